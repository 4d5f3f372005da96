"""Daily snapshots of each wave's figures: the history the rollout report draws over time.

The rollout timer evaluates every wave every tick; after each tick one row per wave is written for
the UTC day, keyed by the day, so the last tick of a day leaves that day's figures and a rerun the
same day overwrites instead of adding. The rows live in the state table (namespace
``report-snapshots-<wave>``, key ``YYYY-MM-DD``), next to the wave state they describe.

Rows older than the longest window a report can ask for (``KEEP_DAYS``, a margin beyond
``MAX_WINDOW_DAYS``) are deleted as the timer writes, a few per wave per tick, and the reader asks
the store for the window's days only (a key range), so the history neither grows without end nor
reads the wrong end of it.

A snapshot failing to write never fails the tick: the rollout matters more than its report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.errors import InvalidPayloadError
from shared.state import AsyncKeyValuePort

if TYPE_CHECKING:
    from shared.rollout.lifecycle.evaluate import EvaluationResult, WaveDecision

__all__ = [
    "KEEP_DAYS",
    "MAX_SNAPSHOTS_READ",
    "MAX_WINDOW_DAYS",
    "PRUNE_PER_TICK",
    "SNAPSHOT_VERSION",
    "DailySnapshot",
    "SnapshotRead",
    "clear_snapshots",
    "parse_snapshots",
    "prune_snapshots",
    "read_snapshots",
    "record_daily_snapshots",
    "snapshot_namespace",
    "snapshot_of",
    "write_daily_snapshots",
]

log = logging.getLogger(__name__)

SNAPSHOT_VERSION: Final = 1
_NAMESPACE_PREFIX: Final = "report-snapshots-"
# The longest history a report shows (``--days`` / ``?days=``).
MAX_WINDOW_DAYS: Final = 366
# Rows kept per wave: the longest window and a fortnight's margin; older rows are deleted.
KEEP_DAYS: Final = MAX_WINDOW_DAYS + 14
# Old rows deleted per wave per tick: bounded work; a backlog (the timer stopped for a while, or
# rows from before pruning existed) goes at this rate, every tick.
PRUNE_PER_TICK: Final = 10
# Rows read per wave: more than the days kept, so a window is read whole.
MAX_SNAPSHOTS_READ: Final = 1000


def snapshot_namespace(wave: str) -> str:
    """The state namespace holding ``wave``'s daily rows (one key per UTC day)."""
    return _NAMESPACE_PREFIX + wave


@dataclass(frozen=True, slots=True)
class DailySnapshot:
    """One wave's figures on one UTC day, as the last timer tick of that day measured them.

    Rates are 0..1; None where the gate measured nothing (no members, too few report-only
    sign-ins as evidence).
    """

    wave: str
    day: date
    at: datetime
    state: str
    since: datetime | None
    members: int
    registered: int
    registration_rate: float | None
    registration_threshold: float | None
    report_only_failure_rate: float | None
    report_only_threshold: float | None
    report_only_detail: str
    open_critical_alerts: int
    gates_failing: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "wave": self.wave,
            "day": self.day.isoformat(),
            "at": self.at.isoformat(),
            "state": self.state,
            "since": self.since.isoformat() if self.since else None,
            "members": self.members,
            "registered": self.registered,
            "registrationRate": self.registration_rate,
            "registrationThreshold": self.registration_threshold,
            "reportOnlyFailureRate": self.report_only_failure_rate,
            "reportOnlyThreshold": self.report_only_threshold,
            "reportOnlyDetail": self.report_only_detail,
            "openCriticalAlerts": self.open_critical_alerts,
            "gatesFailing": list(self.gates_failing),
        }

    @classmethod
    def from_json(cls, value: object) -> DailySnapshot:
        """The snapshot stored as ``value``.

        Raises:
            InvalidPayloadError: ``value`` is not a snapshot row (the message names the field).
        """
        if not isinstance(value, Mapping):
            raise InvalidPayloadError.for_field("snapshot", "expected an object")
        return cls(
            wave=_text(value, "wave", required=True),
            day=_day(value.get("day")),
            at=_moment(value, "at", required=True) or datetime.min.replace(tzinfo=UTC),
            state=_text(value, "state", required=True),
            since=_moment(value, "since", required=False),
            members=_count(value, "members"),
            registered=_count(value, "registered"),
            registration_rate=_rate(value, "registrationRate"),
            registration_threshold=_rate(value, "registrationThreshold"),
            report_only_failure_rate=_rate(value, "reportOnlyFailureRate"),
            report_only_threshold=_rate(value, "reportOnlyThreshold"),
            report_only_detail=_text(value, "reportOnlyDetail", required=False),
            open_critical_alerts=_count(value, "openCriticalAlerts"),
            gates_failing=tuple(str(g) for g in value.get("gatesFailing") or () if isinstance(g, str)),
        )


def snapshot_of(decision: WaveDecision, *, now: datetime) -> DailySnapshot:
    """The snapshot of one evaluated wave at ``now`` (its state after the tick applied it)."""
    moved = decision.applied and decision.new_state is not None
    state = decision.new_state if moved and decision.new_state is not None else decision.state
    registration = decision.gate("registration")
    impact = decision.gate("report-only-impact")
    alerts = decision.gate("no-critical-alerts")
    at = now.astimezone(UTC)
    return DailySnapshot(
        wave=decision.wave,
        day=at.date(),
        at=at,
        state=state.value,
        since=now if moved else decision.since,
        members=decision.members,
        registered=decision.registered,
        registration_rate=round(decision.registered / decision.members, 4) if decision.members else None,
        registration_threshold=float(registration.threshold) if registration else None,
        report_only_failure_rate=(
            float(impact.measured) if impact is not None and impact.measured is not None else None
        ),
        report_only_threshold=float(impact.threshold) if impact else None,
        report_only_detail=impact.detail if impact else "",
        open_critical_alerts=int(alerts.measured or 0) if alerts is not None else 0,
        gates_failing=tuple(decision.failing),
    )


async def write_daily_snapshots(
    kv: AsyncKeyValuePort, result: EvaluationResult, *, now: datetime
) -> list[DailySnapshot]:
    """One row per evaluated wave for ``now``'s UTC day (upserted: the day's last write wins), then
    up to ``PRUNE_PER_TICK`` of the wave's rows older than ``KEEP_DAYS`` deleted.

    Raises:
        RetryableError: the store is unavailable.
    """
    written = []
    for decision in result.decisions:
        snapshot = snapshot_of(decision, now=now)
        await kv.put(snapshot_namespace(snapshot.wave), snapshot.day.isoformat(), snapshot.to_json())
        written.append(snapshot)
    for snapshot in written:
        await prune_snapshots(kv, snapshot.wave, today=snapshot.day)
    return written


async def prune_snapshots(
    kv: AsyncKeyValuePort, wave: str, *, today: date, limit: int = PRUNE_PER_TICK
) -> int:
    """Delete up to ``limit`` of ``wave``'s rows from before ``today - KEEP_DAYS`` (oldest first, read
    by a key range: only those rows); returns how many.

    Raises:
        RetryableError: the store is unavailable.
    """
    cutoff = (today - timedelta(days=KEEP_DAYS)).isoformat()
    namespace = snapshot_namespace(wave)
    old = await kv.items(namespace, stop=cutoff, limit=limit)
    for key, _ in old:
        await kv.delete(namespace, key)
    return len(old)


async def clear_snapshots(kv: AsyncKeyValuePort, wave: str) -> int:
    """Delete every daily snapshot of ``wave`` (the demo's reset); returns how many.

    Raises:
        RetryableError: the store is unavailable.
    """
    namespace = snapshot_namespace(wave)
    deleted: set[str] = set()
    while fresh := [k for k, _ in await kv.items(namespace, limit=MAX_SNAPSHOTS_READ) if k not in deleted]:
        for key in fresh:  # a row that outlived its delete is not read forever
            await kv.delete(namespace, key)
        deleted.update(fresh)
    return len(deleted)


async def record_daily_snapshots(
    kv: AsyncKeyValuePort, result: EvaluationResult | None, *, now: datetime, correlation_id: str = ""
) -> int:
    """``write_daily_snapshots`` for the rollout timer: the rows written (0 when the tick failed or
    the write did). Any failure, expected (storage down) or not (a bug), is logged with its traceback
    and never raised, so the report can never hold the rollout."""
    if result is None or result.dry_run:
        return 0
    try:
        return len(await write_daily_snapshots(kv, result, now=now))
    except Exception:
        log.exception(
            "daily report snapshot not written; the next tick writes it",
            extra={"correlation_id": correlation_id},
        )
        return 0


@dataclass(frozen=True, slots=True)
class SnapshotRead:
    """A wave's snapshots, oldest first, and how many stored rows could not be read."""

    snapshots: tuple[DailySnapshot, ...]
    unreadable: int = 0


async def read_snapshots(kv: AsyncKeyValuePort, wave: str, *, since: date | None = None) -> SnapshotRead:
    """``wave``'s daily snapshots from ``since`` on, oldest first; malformed rows are counted, not fatal.

    The store reads the days from ``since`` on (a key range), never the namespace's first rows.

    Raises:
        RetryableError: the store is unavailable.
    """
    start = since.isoformat() if since is not None else None
    rows = await kv.items(snapshot_namespace(wave), start=start, limit=MAX_SNAPSHOTS_READ)
    return parse_snapshots(wave, [value for _, value in rows], since=since)


def parse_snapshots(wave: str, rows: Sequence[object], *, since: date | None = None) -> SnapshotRead:
    """The snapshots among ``rows`` that are ``wave``'s, by day, oldest first (one per day)."""
    by_day: dict[date, DailySnapshot] = {}
    unreadable = 0
    for row in rows:
        try:
            snapshot = DailySnapshot.from_json(row)
        except InvalidPayloadError:
            unreadable += 1
            continue
        if snapshot.wave != wave or (since is not None and snapshot.day < since):
            continue
        if snapshot.day not in by_day or snapshot.at > by_day[snapshot.day].at:
            by_day[snapshot.day] = snapshot
    return SnapshotRead(tuple(by_day[d] for d in sorted(by_day)), unreadable)


def _text(value: Mapping[str, Any], key: str, *, required: bool) -> str:
    raw = value.get(key)
    if isinstance(raw, str) and (raw or not required):
        return raw
    if raw is None and not required:
        return ""
    raise InvalidPayloadError.for_field(f"snapshot.{key}", "expected a non-empty string")


def _day(raw: object) -> date:
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise InvalidPayloadError.for_field("snapshot.day", "expected a YYYY-MM-DD date")


def _moment(value: Mapping[str, Any], key: str, *, required: bool) -> datetime | None:
    raw = value.get(key)
    if raw is None and not required:
        return None
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise InvalidPayloadError.for_field(f"snapshot.{key}", "expected an ISO-8601 timestamp with a zone")


def _count(value: Mapping[str, Any], key: str) -> int:
    raw = value.get(key, 0)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise InvalidPayloadError.for_field(f"snapshot.{key}", "expected a whole number, 0 or more")


def _rate(value: Mapping[str, Any], key: str) -> float | None:
    raw = value.get(key)
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and 0 <= raw <= 1:
        return float(raw)
    raise InvalidPayloadError.for_field(f"snapshot.{key}", "expected a rate from 0 to 1, or null")
