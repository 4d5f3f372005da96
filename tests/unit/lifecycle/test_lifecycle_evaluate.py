"""The timer's evaluation: a wave does not promote while a gate fails, and does once they pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.alerting import Alert, open_alert
from shared.errors import RetryableError, SafetyViolationError
from shared.rollout.lifecycle import (
    InvalidTransitionError,
    SignInResult,
    evaluate_waves,
    record_approval,
    rollback_wave,
)
from shared.rollout.lifecycle.approvals import approval_of
from shared.rollout.lifecycle.evaluate import SYNC_KEY, SYNC_NAMESPACE, _mark_sync_pending
from shared.rollout.policies.baseline import SOAK_REASON
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import StateStores
from shared.state.memory import MemoryKeyValueStore
from tests.aio import aio
from tests.unit.lifecycle.fakes import Clock, FakeEvidence

PILOT = {f"p{i}" for i in range(10)}
Build = Callable[..., Any]


def _clean_sign_ins(clock: Clock, evidence: FakeEvidence, count: int = 25) -> None:
    evidence.sign_ins += [SignInResult(f"p{i % 10}", clock.now, "reportOnlySuccess") for i in range(count)]


async def _run(deps: Any, dry_run: bool = False, correlation_id: str = "corr-1") -> Any:
    return await evaluate_waves(deps, correlation_id=correlation_id, dry_run=dry_run)


async def test_each_later_tick_reconciles_the_membership_of_every_started_wave(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence
) -> None:
    # GIVEN the pilot started registering on the first tick (its sync started with the transition)
    deps, _, membership = make_deps()
    evidence.members["pilot"] = PILOT
    await _run(deps, correlation_id="tick-1")
    # WHEN the next ticks run while it holds on registration
    await _run(deps, correlation_id="tick-2")
    await _run(deps, correlation_id="tick-3")
    # THEN each tick re-syncs the pilot (and only the started wave), under that tick's id
    assert [(c["args"], c["correlation_id"]) for c in membership.calls] == [
        (("pilot",), "tick-1"),
        (("pilot",), "tick-2"),
        (("pilot",), "tick-3"),
    ]


async def test_with_a_resync_port_the_started_waves_are_re_synced_together_and_its_failure_reported(
    make_deps: Build, evidence: FakeEvidence
) -> None:
    # GIVEN the timer's re-sync port (production: only the users Graph reports changed)
    deps, _, membership = make_deps()
    resyncs: list[tuple[list[str], str]] = []
    answers: list[dict[str, str] | Exception] = [{}, {"pilot": "blast radius"}, RetryableError("Graph down")]

    async def resync(waves: list[str], *, correlation_id: str) -> dict[str, str]:
        resyncs.append((waves, correlation_id))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    deps = replace(deps, resync_membership=resync)
    evidence.members["pilot"] = PILOT
    # WHEN the first tick starts the pilot (its full sync comes with the transition) and three more run
    first = await _run(deps, correlation_id="tick-1")
    assert resyncs == []  # nothing was started before this tick
    await _run(deps, correlation_id="tick-2")
    refused = await _run(deps, correlation_id="tick-3")
    failed = await _run(deps, correlation_id="tick-4")
    # THEN each later tick hands the started waves to the port once; the transition still syncs
    assert [c["args"] for c in membership.calls] == [("pilot",)]
    assert resyncs == [(["pilot"], "tick-2"), (["pilot"], "tick-3"), (["pilot"], "tick-4")]
    assert first.decisions[0].wave == "pilot"
    # AND a wave whose re-sync could not start, or a re-sync that failed, is reported on its decision
    assert "membership sync not started: blast radius" in refused.decisions[0].detail
    assert "membership sync not started: Graph down" in failed.decisions[0].detail


async def test_the_first_wave_starts_registering_and_the_next_waits(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence
) -> None:
    # GIVEN a fresh plan (every wave planned)
    deps, sync, membership = make_deps()
    evidence.members["pilot"] = PILOT
    # WHEN the timer runs
    result = await _run(deps)
    # THEN the pilot starts registering: membership sync started, CA baseline synced, audited
    pilot, finance = result.decisions[0], result.decisions[1]
    assert (pilot.action, pilot.applied, pilot.new_state) == (
        "start-registering",
        True,
        WaveState.REGISTERING,
    )
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.REGISTERING
    assert [c["args"] for c in membership.calls] == [("pilot",)]
    assert len(sync.calls) == 1
    assert result.policy_synced
    entry = stores.audit.list()[0]
    assert (entry.action, entry.target, entry.details["from"], entry.details["to"]) == (
        "wave.transition",
        "pilot",
        "planned",
        "registering",
    )
    # AND the next wave waits for the pilot to be enforced
    assert (finance.action, finance.applied) == ("wait", False)
    assert (await read_wave_state(aio(stores.kv), "finance-hr")).state is WaveState.PLANNED
    # AND the registration report was read once for all waves
    assert evidence.report_reads == 1


async def test_a_wave_does_not_promote_while_a_gate_fails_and_does_after_it_passes(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    deps, sync, _ = make_deps(promotion="auto")
    evidence.members["pilot"] = PILOT
    await _run(deps)
    # GIVEN the pilot registering with 5 of 10 registered: it holds, naming the gate
    evidence.registered = {f"p{i}" for i in range(5)}
    held = (await _run(deps)).decisions[0]
    assert (held.action, held.detail) == ("hold", "failing: registration (5/10 members registered)")
    # WHEN 9 of 10 register / THEN it moves to report-only (no policy change: the twin already has it)
    evidence.registered = {f"p{i}" for i in range(9)}
    moved = (await _run(deps)).decisions[0]
    assert (moved.action, moved.new_state) == ("move-to-report-only", WaveState.REPORT_ONLY)
    assert len(sync.calls) == 1
    # AND in report-only without sign-ins or soak time it holds with those gates named
    clock.advance(hours=1)
    held = (await _run(deps)).decisions[0]
    assert held.action == "hold"
    assert held.failing == ["report-only-impact", "soak"]
    # WHEN clean sign-ins arrive but the soak is not over / THEN it still holds on soak only
    _clean_sign_ins(clock, evidence)
    held = (await _run(deps)).decisions[0]
    assert held.failing == ["soak"]
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.REPORT_ONLY
    # WHEN the soak days pass / THEN it is promoted and the CA baseline is synced
    clock.advance(days=3)
    result = await _run(deps)
    promoted = result.decisions[0]
    assert (promoted.action, promoted.new_state, promoted.failing) == ("promote", WaveState.ENFORCED, [])
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.ENFORCED
    assert len(sync.calls) == 2
    assert "pilot: report-only -> enforced" in sync.calls[1]["reason"]
    # AND the next wave starts registering in the same run
    assert result.decisions[1].new_state is WaveState.REGISTERING


async def test_an_open_critical_alert_holds_a_ready_wave(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    deps, _, _ = make_deps(promotion="auto", gates={"minSoakDays": 0})
    evidence.members["pilot"], evidence.registered = PILOT, set(PILOT)
    await _run(deps)
    await _run(deps)
    _clean_sign_ins(clock, evidence)
    stores.kv.put("alerts-open", "pilot", {"open": [{"id": "alert-7", "severity": "critical"}]})
    held = (await _run(deps)).decisions[0]
    assert held.action == "hold"
    assert held.failing == ["no-critical-alerts"]
    stores.kv.put("alerts-open", "pilot", {"open": []})
    assert (await _run(deps)).decisions[0].action == "promote"


async def test_approval_promotion_waits_for_the_operator(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    deps, _, _ = make_deps(gates={"minSoakDays": 0})  # the example plan: promotion: approval
    evidence.members["pilot"], evidence.registered = PILOT, set(PILOT)
    await _run(deps)
    await _run(deps)
    _clean_sign_ins(clock, evidence)
    waiting = (await _run(deps)).decisions[0]
    assert waiting.action == "hold"
    assert "waveguard waves approve pilot" in waiting.detail
    await record_approval(aio(stores.kv), "pilot", actor="cli:alice", at=clock.now)
    promoted = (await _run(deps)).decisions[0]
    assert (promoted.action, promoted.approved, promoted.new_state) == ("promote", True, WaveState.ENFORCED)
    assert await approval_of(aio(stores.kv), "pilot") is None  # used up


async def test_a_dry_run_changes_nothing(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence
) -> None:
    deps, sync, membership = make_deps()
    result = await _run(deps, dry_run=True)
    assert result.decisions[0].action == "start-registering"
    assert not result.decisions[0].applied
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.PLANNED
    assert (sync.calls, membership.calls, stores.audit.list()) == ([], [], [])


async def test_a_failed_policy_sync_is_finished_by_the_next_run(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence
) -> None:
    # GIVEN the CA sync fails after the state was written
    deps, sync, _ = make_deps()
    sync.fail_next = RetryableError("graph down")
    with pytest.raises(RetryableError):
        await _run(deps)
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.REGISTERING
    # WHEN the timer runs again / THEN the pending sync is done, once
    result = await _run(deps)
    assert result.policy_synced
    assert len(sync.calls) == 1
    assert not (await _run(deps)).policy_synced


async def test_rollback_takes_an_enforced_wave_back_to_report_only(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    deps, sync, _ = make_deps(promotion="auto", gates={"minSoakDays": 0})
    evidence.members["pilot"], evidence.registered = PILOT, set(PILOT)
    await _run(deps)
    await _run(deps)
    _clean_sign_ins(clock, evidence)
    await _run(deps)
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.ENFORCED
    status = await rollback_wave(
        deps, "pilot", actor="cli:alice", correlation_id="c2", reason="helpdesk flood"
    )
    assert status.state is WaveState.REPORT_ONLY
    assert "rollback of pilot" in sync.calls[-1]["reason"]
    entry = stores.audit.list()[0]
    assert (entry.actor, entry.reason, entry.details["to"]) == ("cli:alice", "helpdesk flood", "report-only")
    with pytest.raises(
        InvalidTransitionError, match="wave 'pilot': expected it enforced but it is report-only"
    ):
        await rollback_wave(deps, "pilot", actor="cli:alice", correlation_id="c3", reason="again")


async def test_rollback_of_an_unknown_wave_names_it(make_deps: Build) -> None:
    deps, _, _ = make_deps()
    with pytest.raises(Exception, match="wave 'nope' is not in the plan"):
        await rollback_wave(deps, "nope", actor="cli:alice", correlation_id="c", reason="r")


async def test_a_wave_whose_group_cannot_be_made_ready_stays_planned(
    make_deps: Build, stores: StateStores
) -> None:
    # GIVEN the wave group cannot be created (Graph refuses)
    deps, sync, membership = make_deps()

    async def refuse(wave: str, *, correlation_id: str) -> str:
        raise RetryableError("graph down")

    deps.ensure_group = refuse
    # WHEN the timer runs / THEN the pilot holds, nothing is written, and the next run may retry
    decision = (await _run(deps)).decisions[0]
    assert (decision.action, decision.applied) == ("hold", False)
    assert "the wave group could not be made ready: graph down" in decision.detail
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.PLANNED
    assert (sync.calls, membership.calls) == ([], [])


def test_two_transitions_marking_the_policy_sync_at_once_both_keep_their_reason() -> None:
    # GIVEN another transition that marks the sync between this one's read and its write
    class RacedKeyValueStore(MemoryKeyValueStore):
        raced = False

        def put(self, namespace: str, key: str, value: Any, **conditions: Any) -> str:
            if namespace == SYNC_NAMESPACE and not self.raced:
                self.raced = True
                super().put(namespace, key, {"pending": True, "reason": "finance: enforced"})
            return super().put(namespace, key, value, **conditions)

    kv = RacedKeyValueStore()
    deps = SimpleNamespace(stores=SimpleNamespace(kv=aio(kv)))
    # WHEN this transition marks the sync
    asyncio.run(_mark_sync_pending(deps, reason="pilot: report-only"))  # type: ignore[arg-type]
    # THEN the marker holds both reasons
    stored = kv.get(SYNC_NAMESPACE, SYNC_KEY)
    assert stored is not None
    assert stored.value == {"pending": True, "reason": "finance: enforced; pilot: report-only"}


async def test_a_sync_refused_in_this_tick_holds_the_wave_in_this_tick(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN a pilot in report-only whose gates all pass
    deps, _, _ = make_deps(promotion="auto", gates={"minSoakDays": 0})
    evidence.members["pilot"], evidence.registered = PILOT, set(PILOT)
    await _run(deps)
    await _run(deps)
    _clean_sign_ins(clock, evidence)
    # WHEN this tick's membership re-sync is refused (over the blast radius: a critical alert opens)
    refusal = Alert(key="wave-sync:pilot:blast-radius", severity="critical", summary="over", source="test")

    async def refuse(wave: str, **_: Any) -> None:
        await open_alert(aio(stores.kv), wave, refusal, alert_id="alert-refused")
        raise SafetyViolationError("would add 900 members, above its blastRadius", rule="blast-radius")

    deps = replace(deps, start_membership=refuse)
    held = (await _run(deps)).decisions[0]
    # THEN the wave holds in the same tick, saying why
    assert (held.action, held.failing) == ("hold", ["no-critical-alerts"])
    assert "membership sync not started: would add 900 members" in held.detail


async def test_a_policy_soak_that_is_not_due_syncs_nothing_until_it_is(
    make_deps: Build, stores: StateStores, clock: Clock
) -> None:
    # GIVEN the marker a running soak of a block/risk pair leaves, due in two days
    deps, sync, _ = make_deps()
    await _run(deps)  # the pilot starts registering (one sync)
    due = clock.now + timedelta(days=2)
    stores.kv.put(
        SYNC_NAMESPACE, SYNC_KEY, {"pending": True, "reason": SOAK_REASON, "soakDue": due.isoformat()}
    )
    # WHEN the timer ticks before it is due THEN nothing is synced and the marker stays as it was
    assert not (await _run(deps)).policy_synced
    assert len(sync.calls) == 1
    assert stores.kv.get(SYNC_NAMESPACE, SYNC_KEY).value["soakDue"] == due.isoformat()
    # AND once it is due, the tick syncs (the pair takes the wave) and clears the marker
    clock.now = due + timedelta(minutes=1)
    assert (await _run(deps)).policy_synced
    assert len(sync.calls) == 2
