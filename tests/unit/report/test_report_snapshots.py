"""The daily snapshot writer: one row per wave per UTC day, a rerun the same day overwrites, a bad
row or a failing store never breaks the reader or the timer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.errors import RetryableError
from shared.report.snapshots import (
    DailySnapshot,
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
