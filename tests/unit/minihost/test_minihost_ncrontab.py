"""NCRONTAB parsing and next-fire computation, as Azure Functions timer triggers read schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.minihost.errors import BindingError
from local.minihost.ncrontab import parse


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * * *", at(2026, 1, 1, 12, 0, 0), at(2026, 1, 1, 12, 0, 1)),
        ("*/15 * * * * *", at(2026, 1, 1, 12, 0, 1), at(2026, 1, 1, 12, 0, 15)),
        ("0 */5 * * * *", at(2026, 1, 1, 12, 3, 0), at(2026, 1, 1, 12, 5, 0)),
        ("0 0 * * * *", at(2026, 1, 1, 23, 30, 0), at(2026, 1, 2, 0, 0, 0)),
        ("0 30 9 * * *", at(2026, 1, 1, 9, 30, 0), at(2026, 1, 2, 9, 30, 0)),
        ("0 0 9-17 * * *", at(2026, 1, 1, 17, 0, 1), at(2026, 1, 2, 9, 0, 0)),
        ("0 0,30 8 * * *", at(2026, 1, 1, 8, 10, 0), at(2026, 1, 1, 8, 30, 0)),
        ("5/20 * * * * *", at(2026, 1, 1, 0, 0, 6), at(2026, 1, 1, 0, 0, 25)),
        ("0 0 0 1 * *", at(2026, 1, 15, 0, 0, 0), at(2026, 2, 1, 0, 0, 0)),
        ("0 0 0 31 * *", at(2026, 1, 31, 0, 0, 0), at(2026, 3, 31, 0, 0, 0)),
        ("0 0 0 29 2 *", at(2026, 1, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0)),
        ("0 0 0 1 1 *", at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0)),
    ],
)
def test_next_fire_time_follows_the_schedule(expression: str, after: datetime, expected: datetime) -> None:
    # GIVEN a schedule WHEN asking for the next firing after a moment THEN it is the first match after it
    assert parse(expression).next_after(after) == expected


def test_names_for_months_and_weekdays_are_accepted_in_any_case() -> None:
    # GIVEN "9:30 on weekdays" written with names (2026-01-02 is a Friday)
    schedule = parse("0 30 9 * * mon-FRI")
    # WHEN asking for the firings after Friday 10:00
    first = schedule.next_after(at(2026, 1, 2, 10, 0, 0))
    second = schedule.next_after(first)
    # THEN the weekend is skipped
    assert (first, second) == (at(2026, 1, 5, 9, 30, 0), at(2026, 1, 6, 9, 30, 0))
    assert parse("0 0 0 1 JAN,jul *").months == frozenset({1, 7})


def test_sunday_is_day_zero() -> None:
    # GIVEN "midnight on Sundays" WHEN asked after Monday 2026-01-05 THEN the next Sunday, 2026-01-11
    assert parse("0 0 0 * * 0").next_after(at(2026, 1, 5)) == at(2026, 1, 11)
    assert parse("0 0 0 * * SUN").weekdays == frozenset({0})


def test_day_of_month_and_day_of_week_must_both_match_like_ncrontab() -> None:
    # GIVEN "the 13th, if it is a Friday" (NCrontab ANDs the two day fields, unlike Vixie cron)
    schedule = parse("0 0 0 13 * FRI")
    # WHEN asking for the next firing from 2026-01-01 THEN Friday 13 February 2026, not a Friday in January
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 2, 13)


def test_naive_datetimes_are_taken_as_utc_and_the_result_is_utc() -> None:
    result = parse("0 0 12 * * *").next_after(datetime(2026, 1, 1, 11, 0, 0))
    assert result == at(2026, 1, 1, 12, 0, 0)
    assert result.tzinfo is UTC


def test_matches_tells_whether_a_moment_is_a_firing_time() -> None:
    schedule = parse("0 */10 * * * *")
    assert schedule.matches(at(2026, 1, 1, 8, 20, 0))
    assert not schedule.matches(at(2026, 1, 1, 8, 21, 0))


@pytest.mark.parametrize(
    ("expression", "mentions"),
    [
        ("* * * * *", "has 5 fields; expected 6"),
        ("60 * * * * *", "second field '60': 60 is outside 0-59"),
        ("0 60 * * * *", "minute field '60'"),
        ("0 0 24 * * *", "hour field '24'"),
        ("0 0 0 0 * *", "day field '0'"),
        ("0 0 0 * 13 *", "month field '13'"),
        ("0 0 0 * * 7", "day-of-week field '7': 7 is outside 0-6"),
        ("0 0 0 * FOO *", "'FOO' is not a number 1-12 or one of JAN"),
        ("*/0 * * * * *", "step must be a positive integer"),
        ("0 30-10 * * * *", "range 30-10 runs backwards"),
        ("0 1,,2 * * * *", "empty list item"),
        ("0 0 0 30 2 *", "never fires"),
    ],
)
def test_bad_expressions_are_rejected_naming_the_field(expression: str, mentions: str) -> None:
    # GIVEN a malformed schedule WHEN parsing it (and computing a firing) THEN the error says what is wrong
    with pytest.raises(BindingError, match=mentions.replace("(", r"\(")):
        parse(expression).next_after(at(2026, 1, 1))
