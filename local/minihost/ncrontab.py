"""NCRONTAB schedules as Azure Functions timer triggers read them: six fields, the first one seconds.

"{second} {minute} {hour} {day} {month} {day-of-week}" with `*`, lists (`1,5`), ranges (`9-17`),
steps (`*/5`, `10-40/10`, `5/15`) and names (`JAN`..`DEC`, `SUN`..`SAT`). Day of week is 0-6 with
Sunday = 0. Like the NCrontab library the Functions host uses (and unlike Vixie cron), a day must
match BOTH the day-of-month and the day-of-week fields when both are restricted.
Times are computed in UTC (the Functions default when WEBSITE_TIME_ZONE is not set).
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from local.minihost.errors import BindingError

MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


FIELDS = (
    _Field("second", 0, 59, {}),
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day", 1, 31, {}),
    _Field("month", 1, 12, {k.upper(): v for k, v in MONTHS.items()}),
    _Field("day-of-week", 0, 6, DAYS),
)
# Far enough to cover any valid day/month/weekday combination (e.g. Feb 29 on a Monday: 28 years).
_SEARCH_YEARS = 30


@dataclass(frozen=True)
class Schedule:
    """A parsed NCRONTAB expression; `next_after` computes firing times."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def matches(self, moment: datetime) -> bool:
        """True when `moment` (truncated to the second) is a firing time."""
        return (
            moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and self._day_matches(moment)
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first firing time strictly after `moment` (naive datetimes are taken as UTC).

        Raises:
            BindingError: the expression never fires (e.g. 30 February).
        """
        start = _as_utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        limit = day + timedelta(days=366 * _SEARCH_YEARS)
        while day < limit:
            if day.month not in self.months:
                day = _first_of_next_month(day)
                continue
            if self._day_matches(day):
                found = self._first_time_in_day(day, not_before=start)
                if found is not None:
                    return found
            day += timedelta(days=1)
        raise BindingError(
            f"schedule {self.expression!r} never fires (no matching date in {_SEARCH_YEARS} years)"
        )

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Python: Monday = 0; NCRONTAB: Sunday = 0
        return moment.month in self.months and moment.day in self.days and weekday in self.weekdays

    def _first_time_in_day(self, day: datetime, *, not_before: datetime) -> datetime | None:
        same_day = day.date() == not_before.date()
        floor = (not_before.hour, not_before.minute, not_before.second) if same_day else (0, 0, 0)
        found = _first_at_or_after(floor, (sorted(self.hours), sorted(self.minutes), sorted(self.seconds)))
        if found is None:
            return None
        return day.replace(hour=found[0], minute=found[1], second=found[2])


def _first_at_or_after(floor: tuple[int, ...], allowed: tuple[list[int], ...]) -> tuple[int, ...] | None:
    """The smallest tuple of allowed values (hour, minute, second) that is >= floor, lexicographically."""
    if not floor:
        return ()
    head, rest = allowed[0], allowed[1:]
    first = bisect.bisect_left(head, floor[0])
    for value in head[first:]:
        inner_floor = floor[1:] if value == floor[0] else tuple(0 for _ in floor[1:])
        tail = _first_at_or_after(inner_floor, rest)
        if tail is not None:
            return (value, *tail)
    return None


def parse(expression: str) -> Schedule:
    """Parse a six-field NCRONTAB expression.

    Raises:
        BindingError: the expression is malformed; the message names the field and the bad part.
    """
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise BindingError(
            f"schedule {expression!r} has {len(parts)} fields; expected 6: "
            "'{second} {minute} {hour} {day} {month} {day-of-week}', e.g. '0 */5 * * * *'"
        )
    sets = [_parse_field(part, spec, expression) for part, spec in zip(parts, FIELDS, strict=True)]
    return Schedule(expression, *sets)


def _parse_field(text: str, spec: _Field, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _field_error(expression, spec, text, "empty list item")
        values.update(_parse_item(item, spec, expression))
    return frozenset(values)


def _parse_item(item: str, spec: _Field, expression: str) -> range:
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise _field_error(expression, spec, item, "step must be a positive integer")
        step = int(step_text)
    if base == "*":
        return range(spec.low, spec.high + 1, step)
    low_text, dash, high_text = base.partition("-")
    low = _parse_value(low_text, spec, expression, item)
    # "5/15" means from 5 to the end of the field in steps of 15.
    open_end = spec.high if step_text else low
    high = _parse_value(high_text, spec, expression, item) if dash else open_end
    if high < low:
        raise _field_error(expression, spec, item, f"range {low}-{high} runs backwards")
    return range(low, high + 1, step)


def _parse_value(text: str, spec: _Field, expression: str, item: str) -> int:
    key = text.upper()
    if key in spec.names:
        return spec.names[key]
    if not text.isdigit():
        expected = f"a number {spec.low}-{spec.high}"
        if spec.names:
            expected += " or one of " + ", ".join(spec.names)
        raise _field_error(expression, spec, item, f"{text!r} is not {expected}")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise _field_error(expression, spec, item, f"{value} is outside {spec.low}-{spec.high}")
    return value


def _field_error(expression: str, spec: _Field, part: str, why: str) -> BindingError:
    return BindingError(f"schedule {expression!r}: {spec.name} field {part!r}: {why}")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _first_of_next_month(day: datetime) -> datetime:
    if day.month == 12:
        return day.replace(year=day.year + 1, month=1, day=1)
    return day.replace(month=day.month + 1, day=1)
