"""A wave does not promote while a gate fails and does after it passes (real emulator and Azurite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.graph_emulator import EmulatorHandle
from shared.rollout.lifecycle import evaluate_waves, rollback_wave
from shared.rollout.wave_state import WaveState, read_wave_state
from tests.aio import aio
from tests.functional.lifecycle.conftest import (
    clear_request_log,
    create_pilot_group,
    inject_fault,
    inject_sign_ins,
    it_user_ids,
    live_policy,
    register_methods,
    registration_of,
    request_count,
)

pytestmark = pytest.mark.functional

GATES = {"minSoakDays": 0, "minReportOnlySignIns": 20, "minRegistrationRate": 0.9}


class Membership:
    def __init__(self) -> None:
        self.started: list[str] = []

    async def __call__(self, wave: str, *, correlation_id: str) -> None:
        self.started.append(wave)


async def test_gates_hold_the_pilot_then_registration_and_clean_sign_ins_promote_it(
    make_deps: Callable[..., Any], emulator_server: EmulatorHandle
) -> None:
    # GIVEN the demo tenant, the pilot wave group holding IT, and a plan with automatic promotion
    members = it_user_ids(emulator_server)
    group_id = create_pilot_group(emulator_server, members)
    membership = Membership()
    deps, _ = make_deps(membership, promotion="auto", gates=GATES)
    # WHEN the timer first runs
    first = (await evaluate_waves(deps, correlation_id="t1")).decisions[0]
    # THEN the pilot is registering, its membership sync started, its group in the report-only twin
    assert (first.action, first.new_state) == ("start-registering", WaveState.REGISTERING)
    assert membership.started == ["pilot"]
    twin = live_policy(emulator_server, "Require MFA (report-only waves)")
    assert group_id in twin["conditions"]["users"]["includeGroups"]
    assert twin["state"] == "enabledForReportingButNotEnforced"
    # WHEN it runs again with only part of IT registered / THEN it holds on the registration gate
    registered = [u for u, ok in registration_of(emulator_server, members).items() if ok]
    held = (await evaluate_waves(deps, correlation_id="t2")).decisions[0]
    assert held.action == "hold"
    assert held.detail == f"failing: registration ({len(registered)}/{len(members)} members registered)"
    # WHEN every member registers MFA / THEN it moves to report-only
    register_methods(emulator_server, [u for u in members if u not in registered])
    moved = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert (moved.action, moved.new_state) == ("move-to-report-only", WaveState.REPORT_ONLY)
    # WHEN report-only sign-ins show too many failures / THEN it holds naming the impact gate
    inject_sign_ins(emulator_server, members[:18], twin, "reportOnlySuccess")
    inject_sign_ins(emulator_server, members[18:21], twin, "reportOnlyFailure")
    held = (await evaluate_waves(deps, correlation_id="t4")).decisions[0]
    assert (held.action, held.failing) == ("hold", ["report-only-impact"])
    impact = held.gate("report-only-impact")
    assert impact is not None
    assert (impact.measured, impact.threshold) == (round(3 / 21, 4), 0.05)
    assert (await read_wave_state(aio(deps.stores.kv), "pilot")).state is WaveState.REPORT_ONLY
    # WHEN enough clean sign-ins follow / THEN every gate passes and the pilot is enforced
    inject_sign_ins(emulator_server, members * 2, twin, "reportOnlySuccess")
    promoted = (await evaluate_waves(deps, correlation_id="t5")).decisions[0]
    assert (promoted.action, promoted.new_state, promoted.failing) == ("promote", WaveState.ENFORCED, [])
    enforcing = live_policy(emulator_server, "Require MFA")
    assert enforcing["conditions"]["users"]["includeGroups"] == [group_id]
    assert enforcing["state"] == "enabled"
    assert group_id not in live_policy(emulator_server, "Require MFA (report-only waves)")["conditions"][
        "users"
    ].get("includeGroups", [])
    # AND the break-glass accounts stay excluded from the enforcing policy
    assert emulator_server.demo is not None
    assert set(emulator_server.demo.break_glass_ids) <= set(enforcing["conditions"]["users"]["excludeUsers"])
    # AND every transition is in the audit log
    audit = [
        (e.details["from"], e.details["to"]) for e in deps.stores.audit.sync.list() if e.target == "pilot"
    ]
    assert sorted(audit) == sorted(
        [("planned", "registering"), ("registering", "report-only"), ("report-only", "enforced")]
    )

    # WHEN the operator rolls it back / THEN the group leaves the enforcing policy again
    status = await rollback_wave(deps, "pilot", actor="cli:test", correlation_id="t6", reason="test")
    assert status.state is WaveState.REPORT_ONLY
    assert group_id not in live_policy(emulator_server, "Require MFA")["conditions"]["users"].get(
        "includeGroups", []
    )
    assert (
        group_id
        in live_policy(emulator_server, "Require MFA (report-only waves)")["conditions"]["users"][
            "includeGroups"
        ]
    )


async def test_the_registration_report_is_read_once_per_evaluation(
    make_deps: Callable[..., Any], emulator_server: EmulatorHandle
) -> None:
    # GIVEN the pilot registering
    create_pilot_group(emulator_server, it_user_ids(emulator_server))
    deps, _ = make_deps(Membership(), gates=GATES)
    await evaluate_waves(deps, correlation_id="r1")
    clear_request_log(emulator_server)
    # WHEN the timer evaluates every wave
    await evaluate_waves(deps, correlation_id="r2", dry_run=True)
    # THEN the rate-limited report was requested once, never per user
    assert request_count(emulator_server, "userRegistrationDetails") == 1


async def test_a_throttled_registration_report_is_retried_after_its_retry_after(
    make_deps: Callable[..., Any], emulator_server: EmulatorHandle
) -> None:
    # GIVEN the registration report answers 429 with Retry-After: 1 once
    create_pilot_group(emulator_server, it_user_ids(emulator_server))
    deps, _ = make_deps(Membership(), gates=GATES)
    inject_fault(
        emulator_server, {"status": 429, "count": 1, "retryAfter": 1, "path": "userRegistrationDetails"}
    )
    clear_request_log(emulator_server)
    # WHEN the timer evaluates / THEN it waits and reads it again, and the pilot still starts
    result = await evaluate_waves(deps, correlation_id="q1", dry_run=True)
    assert result.decisions[0].action == "start-registering"
    assert request_count(emulator_server, "userRegistrationDetails") == 2
