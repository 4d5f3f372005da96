"""The daily snapshot writer: one row per wave per UTC day, a rerun the same day overwrites, a bad
row or a failing store never breaks the reader or the timer."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from handlers.wave_timer import after_tick
from shared.errors import RetryableError
from shared.report import MAX_DAYS
from shared.report.snapshots import (
    KEEP_DAYS,
    MAX_WINDOW_DAYS,
    PRUNE_PER_TICK,
    DailySnapshot,
    clear_snapshots,
    read_snapshots,
    record_daily_snapshots,
    snapshot_namespace,
    snapshot_of,
    write_daily_snapshots,
)
from shared.rollout.lifecycle.evaluate import Action, EvaluationResult, WaveDecision
from shared.rollout.lifecycle.gates import GateResult
from shared.rollout.wave_state import WaveState
from shared.state import build_memory_state
from shared.state.aio import AsyncKeyValuePort

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _decision(
    registered: int = 30, *, applied_to: WaveState | None = None, failure: float | None = 0.01
) -> WaveDecision:
    gates = [
        GateResult("registration", True, registered / 40, 0.95, f"{registered}/40 members registered"),
        GateResult("report-only-impact", True, failure, 0.02, "1/100 report-only sign-ins would have failed"),
        GateResult("soak", False, 1.5, 7, "1.5 days in report-only"),
        GateResult("no-critical-alerts", False, 2, 0, "open critical alerts: a, b"),
    ]
    decision = WaveDecision(
        "pilot", WaveState.REPORT_ONLY, NOW - timedelta(days=2), Action.HOLD, "", gates, 40, registered, False
    )
    if applied_to is not None:
        decision.applied, decision.new_state = True, applied_to
    return decision


def test_a_snapshot_holds_the_gates_figures_and_the_state_after_the_tick() -> None:
    # GIVEN a wave promoted by this tick / WHEN snapshotted / THEN its new state, since now
    snapshot = snapshot_of(_decision(applied_to=WaveState.ENFORCED), now=NOW)
    assert (snapshot.state, snapshot.since, snapshot.day) == ("enforced", NOW, date(2026, 3, 2))
    assert (snapshot.members, snapshot.registered, snapshot.registration_rate) == (40, 30, 0.75)
    assert (snapshot.registration_threshold, snapshot.report_only_threshold) == (0.95, 0.02)
    assert snapshot.report_only_failure_rate == 0.01
    assert snapshot.open_critical_alerts == 2
    assert snapshot.gates_failing == ("soak", "no-critical-alerts")
    # AND a held wave keeps its state and since
    held = snapshot_of(_decision(), now=NOW)
    assert (held.state, held.since) == ("report-only", NOW - timedelta(days=2))
    # AND the stored form reads back the same
    assert DailySnapshot.from_json(snapshot.to_json()) == snapshot


async def test_one_row_per_day_a_rerun_the_same_day_overwrites() -> None:
    kv = build_memory_state().aio.kv
    # WHEN the timer ticks three times on one day, then once the next day
    for minutes, registered in ((0, 10), (15, 20), (30, 25)):
        result = EvaluationResult([_decision(registered)], dry_run=False)
        await write_daily_snapshots(kv, result, now=NOW + timedelta(minutes=minutes))
    await write_daily_snapshots(
        kv, EvaluationResult([_decision(33)], dry_run=False), now=NOW + timedelta(days=1)
    )
    # THEN there are two rows, the first day's holding its last tick's figures
    read = await read_snapshots(kv, "pilot")
    assert [(s.day.isoformat(), s.registered) for s in read.snapshots] == [
        ("2026-03-02", 25),
        ("2026-03-03", 33),
    ]
    assert len(await kv.values(snapshot_namespace("pilot"))) == 2
    # AND a window start leaves the older day out
    later = await read_snapshots(kv, "pilot", since=date(2026, 3, 3))
    assert [s.registered for s in later.snapshots] == [33]


async def test_unreadable_rows_are_counted_and_left_out() -> None:
    kv = build_memory_state().aio.kv
    await write_daily_snapshots(kv, EvaluationResult([_decision()], dry_run=False), now=NOW)
    await kv.put(snapshot_namespace("pilot"), "2026-03-01", {"wave": "pilot", "day": "yesterday"})
    await kv.put(snapshot_namespace("pilot"), "2026-02-28", ["not", "a", "row"])
    bad_rate = {**snapshot_of(_decision(), now=NOW - timedelta(days=3)).to_json(), "registrationRate": 7}
    await kv.put(snapshot_namespace("pilot"), "2026-02-27", bad_rate)
    read = await read_snapshots(kv, "pilot")
    assert (len(read.snapshots), read.unreadable) == (1, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("day", "2026-13-01", "expected a YYYY-MM-DD date"),
        ("at", "2026-03-02T09:30:00", "expected an ISO-8601 timestamp with a zone"),
        ("members", -1, "expected a whole number"),
        ("reportOnlyFailureRate", 1.5, "expected a rate from 0 to 1"),
        ("state", "", "expected a non-empty string"),
    ],
)
def test_a_malformed_row_names_its_field(field: str, value: Any, message: str) -> None:
    row = {**snapshot_of(_decision(), now=NOW).to_json(), field: value}
    with pytest.raises(Exception, match=message) as caught:
        DailySnapshot.from_json(row)
    assert f"snapshot.{field}" in str(caught.value)


class _DownStore:
    """A KV store whose writes fail as Azure Tables does when storage is unreachable."""

    def __init__(self, inner: AsyncKeyValuePort) -> None:
        self.inner = inner
        self.puts = 0

    async def put(self, namespace: str, key: str, value: Any, **kwargs: Any) -> str:
        self.puts += 1
        raise RetryableError("storage unreachable", operation="write state")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_timer_hook_never_raises_and_skips_what_it_must() -> None:
    kv = build_memory_state().aio.kv
    down = _DownStore(kv)
    result = EvaluationResult([_decision()], dry_run=False)
    # GIVEN storage down / WHEN the timer records its snapshots / THEN nothing is raised, 0 written
    assert await record_daily_snapshots(down, result, now=NOW) == 0  # type: ignore[arg-type]
    assert down.puts == 1
    # AND a failed tick (None) or a dry run writes nothing
    assert await record_daily_snapshots(kv, None, now=NOW) == 0
    assert await record_daily_snapshots(kv, EvaluationResult([_decision()], dry_run=True), now=NOW) == 0
    assert await kv.values(snapshot_namespace("pilot")) == []
    # AND a good tick writes one row per wave
    assert await record_daily_snapshots(kv, result, now=NOW) == 1


def _row(day: date) -> dict[str, Any]:
    at = datetime(day.year, day.month, day.day, 23, 45, tzinfo=UTC)
    return snapshot_of(_decision(), now=at).to_json()


async def test_the_reader_asks_the_store_for_the_window_not_the_namespaces_first_rows() -> None:
    kv = build_memory_state().aio.kv
    # GIVEN three years of daily rows (more than one read returns), stored oldest first
    first = NOW.date() - timedelta(days=1100)
    for n in range(1101):
        day = first + timedelta(days=n)
        await kv.put(snapshot_namespace("pilot"), day.isoformat(), _row(day))
    # WHEN the last 30 days are read
    read = await read_snapshots(kv, "pilot", since=NOW.date() - timedelta(days=30))
    # THEN they are the last 30 days, today's included
    assert [s.day for s in read.snapshots] == [NOW.date() - timedelta(days=d) for d in range(30, -1, -1)]


async def test_each_tick_deletes_a_few_rows_older_than_the_longest_window() -> None:
    kv = build_memory_state().aio.kv
    namespace = snapshot_namespace("pilot")
    assert KEEP_DAYS > MAX_WINDOW_DAYS == MAX_DAYS
    # GIVEN rows from before the kept days (a backlog of 25) and rows inside them
    cutoff = NOW.date() - timedelta(days=KEEP_DAYS)
    old = [cutoff - timedelta(days=n) for n in range(1, 26)]
    kept = [cutoff, cutoff + timedelta(days=1), NOW.date() - timedelta(days=MAX_WINDOW_DAYS)]
    for day in old + kept:
        await kv.put(namespace, day.isoformat(), _row(day))
    result = EvaluationResult([_decision()], dry_run=False)
    # WHEN the timer ticks: each tick deletes at most PRUNE_PER_TICK of them, the oldest first
    await write_daily_snapshots(kv, result, now=NOW)
    left = {key for key, _ in await kv.items(namespace)}
    assert len(left) == 25 + 3 + 1 - PRUNE_PER_TICK
    assert min(old).isoformat() not in left
    for _ in range(2):
        await write_daily_snapshots(kv, result, now=NOW + timedelta(minutes=15))
    # THEN the backlog is gone and every day a report can show is kept
    assert sorted(key for key, _ in await kv.items(namespace)) == sorted(
        [d.isoformat() for d in kept] + [NOW.date().isoformat()]
    )


async def test_clear_snapshots_deletes_one_waves_rows() -> None:
    kv = build_memory_state().aio.kv
    for n in range(3):
        day = NOW.date() - timedelta(days=n)
        await kv.put(snapshot_namespace("pilot"), day.isoformat(), _row(day))
    await kv.put(snapshot_namespace("second"), NOW.date().isoformat(), _row(NOW.date()))
    assert await clear_snapshots(kv, "pilot") == 3
    assert await kv.items(snapshot_namespace("pilot")) == []
    assert len(await kv.items(snapshot_namespace("second"))) == 1
    assert await clear_snapshots(kv, "pilot") == 0


class _BuggyStore:
    """A KV store whose writes fail with an error no one expected (a bug, not an outage)."""

    def __init__(self, inner: AsyncKeyValuePort) -> None:
        self.inner = inner

    async def put(self, namespace: str, key: str, value: Any, **kwargs: Any) -> str:
        raise RuntimeError("unexpected")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_unexpected_error_is_logged_with_its_traceback_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buggy = _BuggyStore(build_memory_state().aio.kv)
    result = EvaluationResult([_decision()], dry_run=False)
    with caplog.at_level(logging.INFO):
        assert await record_daily_snapshots(buggy, result, now=NOW, correlation_id="c1") == 0  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if "snapshot not written" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_the_timer_logs_its_decisions_before_the_snapshot_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buggy = _BuggyStore(build_memory_state().aio.kv)
    result = EvaluationResult([_decision()], dry_run=False)
    with caplog.at_level(logging.INFO):
        await after_tick(buggy, result, now=NOW, correlation_id="c1")  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    evaluated = messages.index("wave evaluated")
    failed = next(n for n, m in enumerate(messages) if "snapshot not written" in m)
    assert evaluated < failed
