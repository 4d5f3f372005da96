"""The rollout report's content, built from what the state tables hold (never Graph).

Per wave: its state timeline (the audit log's transitions and approvals, and the states the daily
snapshots and the wave record saw), its figures over time (the daily snapshots), its per-user MFA
counts (the last saved ``permfa report``) and its open alerts. Each wave's charts come from
``WAVE_CHARTS``, a tuple of builders: a new figure is one more builder (and, when it needs history,
one more field in the daily snapshot), nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from shared.alerting.open_alerts import OpenAlert, list_open_alerts
from shared.config.plan import RolloutPlan
from shared.config.waves import Wave
from shared.errors import FieldError, InvalidPayloadError
from shared.report.snapshots import MAX_WINDOW_DAYS, DailySnapshot, read_snapshots
from shared.rollout.wave_state import WaveState, WaveStatus, read_wave_state
from shared.state import AsyncStores, AuditEntry, parse_iso
from shared.state.audit import MAX_LIST_LIMIT

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_STALE_AFTER",
    "MAX_DAYS",
    "QUERY_PARAMETERS",
    "STATE_LEVELS",
    "WAVE_CHARTS",
    "Chart",
    "ChartBuilder",
    "Line",
    "ReportOptions",
    "RolloutReport",
    "TimelineEvent",
    "WaveInputs",
    "WaveSection",
    "build_rollout_report",
    "options_from_query",
    "parse_days",
    "report_options",
    "stale_after_for",
]

DEFAULT_DAYS: Final = 90
MAX_DAYS: Final = MAX_WINDOW_DAYS
# Figures older than this are flagged stale: two periods of the rollout timer's default schedule
# (every 15 minutes); ``stale_after_for`` reads the schedule actually set.
DEFAULT_STALE_AFTER: Final = timedelta(minutes=30)
# The lifecycle's states bottom to top: the y axis of the state timeline.
STATE_LEVELS: Final[tuple[str, ...]] = tuple(s.value for s in WaveState)
_TRANSITION: Final = "wave.transition"
_APPROVAL: Final = "wave.approve"
# A snapshot's or the wave record's "since" this close to an audited transition is that transition.
_SAME_CHANGE: Final = timedelta(minutes=10)
QUERY_PARAMETERS: Final = ("wave", "days", "format")
# The Functions host passes the function key as ?code=; it is the host's, not ours.
_HOST_PARAMETERS: Final = frozenset({"code"})


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What to report: one wave or all, over how many days, as HTML or JSON."""

    wave: str | None = None
    days: int = DEFAULT_DAYS
    format: Literal["html", "json"] = "html"


def report_options(
    plan: RolloutPlan, *, wave: str | None = None, days: int = DEFAULT_DAYS, format: str = "html"
) -> ReportOptions:
    """Checked options.

    Raises:
        InvalidPayloadError: an unknown wave, days outside 1..366, or a format other than html/json
            (every bad field listed).
    """
    errors: list[FieldError] = []
    names = [w.name for w in plan.waves]
    if wave is not None and wave not in names:
        shown = wave if len(wave) <= 64 else wave[:64] + "..."
        errors.append(FieldError(field="wave", message=f"unknown wave {shown!r} (waves: {', '.join(names)})"))
    if not 1 <= days <= MAX_DAYS:
        errors.append(FieldError(field="days", message=f"expected 1 to {MAX_DAYS} days, got {days}"))
    if format not in ("html", "json"):
        errors.append(FieldError(field="format", message="expected html or json"))
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidPayloadError(f"invalid report request: {detail}", errors=errors)
    return ReportOptions(wave, days, "json" if format == "json" else "html")


def parse_days(raw: object) -> int | None:
    """The history window of ``--days`` / ``?days=``: ASCII digits only (``str.isdigit`` accepts
    ``²``, which ``int`` refuses), 1 to ``MAX_DAYS``; else None."""
    text = str(raw).strip()
    if not re.fullmatch(r"[0-9]{1,4}", text):
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


_UNITS: Final = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1))


def stale_after_for(schedule: str | None) -> timedelta:
    """Two periods of the rollout timer's NCRONTAB ``schedule`` (six fields, seconds first): the age
    past which a wave's latest figures are flagged stale. Reads the common shapes (``0 */15 * * * *``
    every 15 minutes, ``0 0 * * * *`` hourly, ``*/30 * * * * *``); anything else, or no schedule,
    gives ``DEFAULT_STALE_AFTER``."""
    fields = (schedule or "").split()
    if len(fields) != 6:
        return DEFAULT_STALE_AFTER
    for index, text in enumerate(fields[:4]):
        if re.fullmatch(r"[0-9]{1,2}", text):
            continue  # a fixed second, minute or hour: the period is a larger unit
        step = re.fullmatch(r"\*(?:/([0-9]{1,3}))?", text)
        if step is None or any(f != "*" for f in fields[index + 1 :]):
            return DEFAULT_STALE_AFTER
        return 2 * _UNITS[index] * max(1, int(step.group(1) or 1))
    return DEFAULT_STALE_AFTER


def options_from_query(plan: RolloutPlan, query: Mapping[str, str]) -> ReportOptions:
    """The options of ``GET /api/report?wave=&days=&format=``.

    Raises:
        InvalidPayloadError: an unknown parameter or a bad value (every bad field listed).
    """
    unknown = sorted(k for k in query if k not in QUERY_PARAMETERS and k not in _HOST_PARAMETERS)
    errors = [
        FieldError(field=k[:64], message=f"unknown parameter (known: {', '.join(QUERY_PARAMETERS)})")
        for k in unknown
    ]
    raw_days = query.get("days", str(DEFAULT_DAYS)).strip()
    days = int(raw_days) if re.fullmatch(r"[0-9]{1,4}", raw_days) else -1  # the range: report_options
    try:
        options = report_options(
            plan, wave=query.get("wave") or None, days=days, format=query.get("format", "html")
        )
    except InvalidPayloadError as exc:
        errors += exc.errors
        options = None
    if errors or options is None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidPayloadError(f"invalid report request: {detail}", errors=errors)
    return options


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A moment in a wave's life: it entered ``state`` (a transition) or a promotion was approved.

    ``source`` says where it was read: ``audit`` (the audit log, with who and why), ``snapshot``
    (a daily snapshot's "since", when the audit entry is older than the entries read) or ``state``
    (the wave record itself).
    """

    at: datetime
    kind: Literal["transition", "approval"]
    state: str
    previous: str | None
    actor: str
    reason: str
    source: Literal["audit", "snapshot", "state"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "state": self.state,
            "previous": self.previous,
            "actor": self.actor,
            "reason": self.reason,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Line:
    """One drawn line or bar series; ``values`` align with the chart's labels (None: no value)."""

    name: str
    values: tuple[float | None, ...]
    role: Literal["data", "threshold"] = "data"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values), "role": self.role}


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of a wave.

    ``kind``: ``timeline`` (labels are ISO timestamps, values are ``STATE_LEVELS`` indexes), ``line``
    (labels are days) or ``bar`` (labels are categories). ``unit`` formats the values. ``empty``
    says why there is nothing to draw yet; it is shown instead of the chart.
    """

    key: str
    title: str
    kind: Literal["timeline", "line", "bar"]
    unit: Literal["state", "percent", "count"]
    labels: tuple[str, ...] = ()
    lines: tuple[Line, ...] = ()
    caption: str = ""
    empty: str = ""

    @property
    def has_data(self) -> bool:
        return any(v is not None for line in self.lines if line.role == "data" for v in line.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "unit": self.unit,
            "labels": list(self.labels),
            "lines": [line.to_dict() for line in self.lines],
            "caption": self.caption,
            "empty": self.empty,
        }


@dataclass(frozen=True, slots=True)
class WaveInputs:
    """What a wave's chart builders read."""

    wave: Wave
    status: WaveStatus
    snapshots: tuple[DailySnapshot, ...]
    events: tuple[TimelineEvent, ...]
    per_user_mfa: Mapping[str, Any] | None
    per_user_mfa_at: str | None
    window_start: datetime
    now: datetime


ChartBuilder = Callable[[WaveInputs], Chart]


@dataclass(frozen=True, slots=True)
class WaveSection:
    """One wave's part of the report."""

    name: str
    description: str
    promotion: str
    state: str
    since: datetime | None
    latest: DailySnapshot | None
    events: tuple[TimelineEvent, ...]
    charts: tuple[Chart, ...]
    open_alerts: tuple[OpenAlert, ...]
    notes: tuple[str, ...] = ()
    # The latest figures are older than the report's ``stale_after`` (the timer has not written since).
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.name,
            "description": self.description,
            "promotion": self.promotion,
            "state": self.state,
            "since": self.since.isoformat() if self.since else None,
            "latest": self.latest.to_json() if self.latest else None,
            "figuresAt": self.latest.at.isoformat() if self.latest else None,
            "stale": self.stale,
            "events": [e.to_dict() for e in self.events],
            "charts": [c.to_dict() for c in self.charts],
            "openAlerts": [a.to_dict() for a in self.open_alerts],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class RolloutReport:
    """The whole report: every wave asked for, over ``days`` days up to ``generated_at``."""

    tenant: str
    generated_at: datetime
    days: int
    window_start: datetime
    waves: tuple[WaveSection, ...]
    per_user_mfa_at: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    stale_after: timedelta = DEFAULT_STALE_AFTER

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "generatedAt": self.generated_at.isoformat(),
            "days": self.days,
            "windowStart": self.window_start.isoformat(),
            "staleAfterSeconds": int(self.stale_after.total_seconds()),
            "perUserMfaReportAt": self.per_user_mfa_at,
            "waves": [w.to_dict() for w in self.waves],
            "notes": list(self.notes),
        }


async def build_rollout_report(
    plan: RolloutPlan,
    stores: AsyncStores,
    *,
    now: datetime,
    options: ReportOptions = ReportOptions(),
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> RolloutReport:
    """Read the state tables and put the report together (no Graph call). A wave whose latest
    snapshot is older than ``stale_after`` (``stale_after_for`` the timer's schedule) is flagged stale.

    Raises:
        InvalidPayloadError: ``options`` name a wave the plan does not have, or a stored wave
            record or open-alert list is malformed.
        RetryableError: the store is unavailable.
    """
    from shared.rollout.permfa import last_report  # the saved report's reader (its module stays lazy)

    checked = report_options(plan, wave=options.wave, days=options.days, format=options.format)
    now = now.astimezone(UTC)
    window_start = now - timedelta(days=checked.days)
    # Only the transitions and approvals, selected by the store: however many other entries the
    # window holds (a per-user MFA migration writes hundreds), they never crowd these out.
    entries = await stores.audit.list_actions(
        (_TRANSITION, _APPROVAL), target=checked.wave, since=window_start, limit=MAX_LIST_LIMIT
    )
    notes: list[str] = []
    if len(entries) >= MAX_LIST_LIMIT:
        oldest = entries[-1].at.isoformat(timespec="minutes") if entries[-1].at else "?"
        notes.append(
            f"More than {MAX_LIST_LIMIT} transitions and approvals in this window; those before "
            f"{oldest} are shown from the daily snapshots (when, not who or why)."
        )
    saved = await last_report(stores.kv)
    per_user = _per_user_rows(saved)
    per_user_at = str(saved.get("at")) if saved and saved.get("at") else None
    sections = []
    for wave in plan.waves:
        if checked.wave is not None and wave.name != checked.wave:
            continue
        status = await read_wave_state(stores.kv, wave.name)
        read = await read_snapshots(stores.kv, wave.name, since=window_start.date())
        events = _timeline(wave.name, entries, read.snapshots, status, window_start)
        inputs = WaveInputs(
            wave, status, read.snapshots, events, per_user.get(wave.name), per_user_at, window_start, now
        )
        wave_notes = []
        if read.unreadable:
            wave_notes.append(f"{read.unreadable} stored daily snapshot(s) unreadable and left out.")
        latest = read.snapshots[-1] if read.snapshots else None
        stale = latest is not None and now - latest.at > stale_after
        if latest is not None and stale:
            wave_notes.append(
                f"These figures are of {_short(latest.at)}, older than {_span(stale_after)} (two rollout "
                "timer periods): the timer has not written since (stopped, failing, or this wave no "
                "longer evaluated)."
            )
        sections.append(
            WaveSection(
                name=wave.name,
                description=wave.description,
                promotion=wave.promotion,
                state=status.state.value,
                since=status.since,
                latest=latest,
                events=events,
                charts=tuple(build(inputs) for build in WAVE_CHARTS),
                open_alerts=tuple(await list_open_alerts(stores.kv, wave.name)),
                notes=tuple(wave_notes),
                stale=stale,
            )
        )
    return RolloutReport(
        tenant=plan.tenant.name or plan.tenant.domain or "",
        generated_at=now,
        days=checked.days,
        window_start=window_start,
        waves=tuple(sections),
        per_user_mfa_at=per_user_at,
        notes=tuple(notes),
        stale_after=stale_after,
    )


def _per_user_rows(saved: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    rows = saved.get("waves") if saved else None
    if not isinstance(rows, list):
        return {}
    return {str(r["wave"]): r for r in rows if isinstance(r, Mapping) and isinstance(r.get("wave"), str)}


def _timeline(
    wave: str,
    entries: Sequence[AuditEntry],
    snapshots: Sequence[DailySnapshot],
    status: WaveStatus,
    window_start: datetime,
) -> tuple[TimelineEvent, ...]:
    """The wave's transitions and approvals, oldest first: the audit log's, then any state the
    snapshots or the wave record saw begin that no audited transition accounts for."""
    events: list[TimelineEvent] = []
    for entry in entries:
        if entry.target != wave or entry.at is None:
            continue
        details = entry.details
        if entry.action == _TRANSITION and str(details.get("to")) in STATE_LEVELS:
            before = str(details.get("from"))
            events.append(
                TimelineEvent(
                    entry.at,
                    "transition",
                    str(details["to"]),
                    before if before in STATE_LEVELS else None,
                    entry.actor,
                    entry.reason,
                    "audit",
                )
            )
        elif entry.action == _APPROVAL:
            state = str(details.get("state", ""))
            approval = TimelineEvent(entry.at, "approval", state, None, entry.actor, entry.reason, "audit")
            events.append(approval)
    seen: list[tuple[datetime, str]] = [(e.at, e.state) for e in events if e.kind == "transition"]
    candidates: list[tuple[datetime, str, Literal["snapshot", "state"]]] = [
        (s.since, s.state, "snapshot") for s in snapshots if s.since is not None
    ]
    if status.since is not None:
        candidates.append((status.since, status.state.value, "state"))
    for since, state, source in candidates:
        if since < window_start or state not in STATE_LEVELS:
            continue
        if any(state == s and abs(since - at) <= _SAME_CHANGE for at, s in seen):
            continue
        seen.append((since, state))
        events.append(TimelineEvent(since, "transition", state, None, "", "", source))
    return tuple(sorted(events, key=lambda e: e.at))


def _state_timeline(inputs: WaveInputs) -> Chart:
    """The wave's state as a step line over the window, up to now."""
    changes = [e for e in inputs.events if e.kind == "transition"]
    current = STATE_LEVELS.index(inputs.status.state.value)
    points: list[tuple[datetime, int]] = []
    if not changes:
        points = [(inputs.window_start, current), (inputs.now, current)]
    else:
        first = changes[0]
        if first.previous is not None:
            points.append((inputs.window_start, STATE_LEVELS.index(first.previous)))
        level: int | None = STATE_LEVELS.index(first.previous) if first.previous is not None else None
        for change in changes:
            new = STATE_LEVELS.index(change.state)
            if level is not None:
                points.append((change.at, level))
            points.append((change.at, new))
            level = new
        points.append((inputs.now, current))
    since = inputs.status.since
    caption = f"{inputs.status.state.value}" + (f" since {_short(since)}" if since else " (never started)")
    return Chart(
        key="state-timeline",
        title="State timeline",
        kind="timeline",
        unit="state",
        labels=tuple(at.isoformat() for at, _ in points),
        lines=(Line("state", tuple(float(level) for _, level in points)),),
        caption=f"Now {caption}.",
    )


def _days(snapshots: Sequence[DailySnapshot]) -> list[date]:
    """Every day from the first snapshot to the last (a day without one has no value)."""
    if not snapshots:
        return []
    first, last = snapshots[0].day, snapshots[-1].day
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _daily(
    snapshots: Sequence[DailySnapshot], value: Callable[[DailySnapshot], float | None]
) -> tuple[tuple[str, ...], tuple[float | None, ...]]:
    by_day = {s.day: s for s in snapshots}
    days = _days(snapshots)
    return (
        tuple(d.isoformat() for d in days),
        tuple(value(by_day[d]) if d in by_day else None for d in days),
    )


def _gate(
    snapshots: Sequence[DailySnapshot], threshold: Callable[[DailySnapshot], float | None]
) -> Line | None:
    """The gate as each day's own row recorded it (a plan change moves the line on its day, never
    back through history); named by today's value, and "now" when it was not always that."""
    _, values = _daily(snapshots, threshold)
    known = [v for v in values if v is not None]
    if not known:
        return None
    name = f"gate {known[-1]:.0%}" if len(set(known)) == 1 else f"gate (now {known[-1]:.0%})"
    return Line(name, values, "threshold")


_NO_SNAPSHOT: Final = "No daily snapshot yet: the rollout timer writes one per wave each day it runs."


def _registration(inputs: WaveInputs) -> Chart:
    """The share of the wave's members registered for MFA, day by day, against its gate."""
    labels, values = _daily(inputs.snapshots, lambda s: s.registration_rate)
    latest = inputs.snapshots[-1] if inputs.snapshots else None
    lines = [Line("registered", values)]
    gate = _gate(inputs.snapshots, lambda s: s.registration_threshold)
    if gate is not None:
        lines.append(gate)
    caption = (
        f"Latest ({latest.day.isoformat()}): {latest.registered} of {latest.members} members registered."
        if latest
        else ""
    )
    empty = _NO_SNAPSHOT if not inputs.snapshots else "No members yet: the rate needs a populated wave group."
    return Chart("registration", "MFA registration", "line", "percent", labels, tuple(lines), caption, empty)


def _report_only(inputs: WaveInputs) -> Chart:
    """The share of the members' report-only sign-ins that would have failed, against its gate."""
    labels, values = _daily(inputs.snapshots, lambda s: s.report_only_failure_rate)
    latest = inputs.snapshots[-1] if inputs.snapshots else None
    lines = [Line("would have failed", values)]
    gate = _gate(inputs.snapshots, lambda s: s.report_only_threshold)
    if gate is not None:
        lines.append(gate)
    caption = f"Latest ({latest.day.isoformat()}): {latest.report_only_detail}." if latest else ""
    empty = (
        _NO_SNAPSHOT
        if latest is None
        else f"Not measured yet: {latest.report_only_detail or 'no report-only sign-ins'}."
    )
    return Chart(
        "report-only-failure-rate",
        "Report-only failure rate",
        "line",
        "percent",
        labels,
        tuple(lines),
        caption,
        empty,
    )


# The saved per-user MFA report's counts as the chart names them; any other count it holds is
# shown too, under its own name, so counts the report gains appear without a change here.
_STATE_LABELS: Final = {
    "disabled": "per-user MFA off",
    "enabled": "per-user MFA enabled",
    "enforced": "per-user MFA enforced",
    "unknown": "state unknown",
}
_COUNT_LABELS: Final = {
    "dependOnPerUserMfa": "depend on it (CA not covering)",
    "readyToMove": "ready to move off",
}
_NOT_COUNTS: Final = frozenset({"wave", "waveState", "caEnforced", "groupId", "members", "states"})


def _per_user_mfa(inputs: WaveInputs) -> Chart:
    """The wave's members by per-user MFA state, from the last saved ``permfa report``."""
    row = inputs.per_user_mfa
    if row is None:
        empty = (
            "No per-user MFA report saved yet: `waveguard permfa report` saves one."
            if inputs.per_user_mfa_at is None
            else "The last per-user MFA report does not cover this wave."
        )
        return Chart("per-user-mfa", "Per-user MFA", "bar", "count", empty=empty)
    labels: list[str] = []
    values: list[float | None] = []
    states = row.get("states")
    for state, count in states.items() if isinstance(states, Mapping) else ():
        if _is_count(count):
            labels.append(_STATE_LABELS.get(str(state), f"per-user MFA {_words(str(state))}"))
            values.append(float(count))
    for key, value in row.items():
        if key in _NOT_COUNTS:
            continue
        if _is_count(value):
            labels.append(_COUNT_LABELS.get(key, _words(key)))
            values.append(float(value))
        elif isinstance(value, Mapping):  # a group of counts, e.g. by outcome
            for inner, count in value.items():
                if _is_count(count):
                    labels.append(f"{_words(key)}: {_words(str(inner))}")
                    values.append(float(count))
    members = row.get("members")
    covered = "CA enforces MFA for this wave" if row.get("caEnforced") else "CA does not enforce MFA yet"
    caption = f"Report of {_saved_at(inputs.per_user_mfa_at)}: " + (
        f"{members} members; {covered}." if _is_count(members) else f"{covered}."
    )
    return Chart(
        "per-user-mfa",
        "Per-user MFA",
        "bar",
        "count",
        tuple(labels),
        (Line("users", tuple(values)),),
        caption,
        "The last per-user MFA report holds no counts for this wave.",
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _words(key: str) -> str:
    """``readyToMove`` -> ``ready to move``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").replace("-", " ").lower()


def _saved_at(text: str | None) -> str:
    moment = parse_iso(text)
    return _short(moment) if moment is not None and moment.tzinfo is not None else str(text)


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


# Each wave's charts, in the order shown. A new figure: a builder here (and, for history, a field
# in the daily snapshot).
WAVE_CHARTS: Final[tuple[ChartBuilder, ...]] = (_state_timeline, _registration, _report_only, _per_user_mfa)
