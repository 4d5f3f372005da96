"""apply: refuses a failing lint, creates report-only, audits every write, and is idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import RolloutPlan
from shared.errors import PermanentError, SafetyViolationError
from shared.rollout.policies import (
    POLICIES_NAMESPACE,
    REPORT_ONLY,
    ApplyResult,
    PolicyPlan,
    TenantIds,
    apply_policy_plan,
    build_policy_plan,
)
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import StateStores, utc_now
from tests.aio import aio


async def _plan(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> PolicyPlan:
    return await build_policy_plan(plan, api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv))


async def _apply(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> ApplyResult:
    policy_plan = await _plan(plan, tenant, ca_api, lookup, stores)
    return await apply_policy_plan(
        policy_plan,
        api=ca_api,
        kv=aio(stores.kv),
        audit=aio(stores.audit),
        actor="cli:test",
        correlation_id="corr-1",
    )


async def test_apply_on_an_empty_tenant_creates_the_baseline_report_only_and_audits_it(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # WHEN the baseline is applied to a tenant without WaveGuard policies
    result = await _apply(plan, tenant, ca_api, lookup, stores)
    # THEN five policies exist, all report-only, all excluding the break-glass accounts and group
    assert len(result.created) == 5
    assert result.writes == 5
    live = list(ca_api.policies.values())
    assert {p["state"] for p in live} == {REPORT_ONLY}
    for policy in live:
        users = policy["conditions"]["users"]
        assert set(tenant.break_glass_user_ids) <= set(users["excludeUsers"])
        assert users["excludeGroups"] == [tenant.exclusion_group_id]
    # AND every write is audited with actor, target and correlation id
    entries = stores.audit.list()
    assert len(entries) == 5
    assert {(e.actor, e.action, e.correlation_id) for e in entries} == {
        ("cli:test", "ca.policy.create", "corr-1")
    }
    assert {e.target for e in entries} == {f"conditionalAccessPolicy/{pid}" for pid in ca_api.policies}
    # AND WaveGuard remembers each policy ran report-only
    for policy_id in ca_api.policies:
        assert stores.kv.get(POLICIES_NAMESPACE, policy_id) is not None


async def test_a_second_apply_writes_nothing(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    await _apply(plan, tenant, ca_api, lookup, stores)
    writes_before = len(ca_api.writes)
    again = await _apply(plan, tenant, ca_api, lookup, stores)
    assert again.writes == 0
    assert len(again.unchanged) == 5
    assert len(ca_api.writes) == writes_before
    assert len(stores.audit.list()) == 5


async def test_desired_state_enabled_is_still_created_report_only(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN the pilot is already enforced before the first apply (the enforcing policy wants "enabled")
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now())
    await _apply(plan, tenant, ca_api, lookup, stores)
    # THEN the new policy is written report-only all the same (safety rule 2)
    assert ca_api.by_name("- Require MFA")["state"] == REPORT_ONLY
    # AND the next apply enables it, since it has now run report-only
    result = await _apply(plan, tenant, ca_api, lookup, stores)
    assert [name for name, _ in result.updated] == ["WaveGuard - Require MFA"]
    assert ca_api.by_name("- Require MFA")["state"] == "enabled"


async def test_a_wave_promotion_is_one_update_of_the_mfa_policies(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN the baseline applied with the pilot in report-only
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now())
    await _apply(plan, tenant, ca_api, lookup, stores)
    pilot = tenant.wave_group_ids["pilot"]
    assert ca_api.by_name("(report-only waves)")["conditions"]["users"]["includeGroups"] == [pilot]
    # WHEN the pilot is promoted and the baseline applied
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now())
    result = await _apply(plan, tenant, ca_api, lookup, stores)
    # THEN the pilot group moves from the twin into the enabled MFA policy; nothing else is written
    assert sorted(name for name, _ in result.updated) == [
        "WaveGuard - Require MFA",
        "WaveGuard - Require MFA (report-only waves)",
    ]
    mfa = ca_api.by_name("- Require MFA")
    assert mfa["state"] == "enabled"
    assert mfa["conditions"]["users"]["includeGroups"] == [pilot]
    assert ca_api.by_name("(report-only waves)")["conditions"]["users"]["includeUsers"] == ["None"]
    update = [e for e in stores.audit.list() if e.action == "ca.policy.update"]
    assert {e.details["displayName"] for e in update} == {
        "WaveGuard - Require MFA",
        "WaveGuard - Require MFA (report-only waves)",
    }


async def test_a_hand_edited_policy_is_repaired_field_by_field(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    await _apply(plan, tenant, ca_api, lookup, stores)
    legacy = ca_api.by_name("Block legacy authentication")
    legacy["conditions"]["users"]["excludeGroups"] = []
    legacy["conditions"]["clientAppTypes"] = ["exchangeActiveSync"]
    policy_plan = await _plan(plan, tenant, ca_api, lookup, stores)
    [change] = policy_plan.diff.writes
    assert {f.path for f in change.fields} == {"conditions.users.excludeGroups", "conditions.clientAppTypes"}
    # the live problem is reported, but it does not block the apply that repairs it
    assert {f.check for f in policy_plan.lint.findings if f.scope == "live"} == {"WG-CA-01", "WG-CA-03"}
    assert policy_plan.lint.ok
    await apply_policy_plan(
        policy_plan, api=ca_api, kv=aio(stores.kv), audit=aio(stores.audit), actor="a", correlation_id="c"
    )
    assert legacy["conditions"]["users"]["excludeGroups"] == [tenant.exclusion_group_id]
    assert legacy["conditions"]["clientAppTypes"] == ["exchangeActiveSync", "other"]


async def test_a_failing_lint_refuses_the_apply_and_writes_nothing(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN the pilot is in report-only but its group was deleted from the tenant
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now())
    lookup.groups.discard(tenant.wave_group_ids["pilot"])
    policy_plan = await _plan(plan, tenant, ca_api, lookup, stores)
    assert [f.check for f in policy_plan.lint.blocking] == ["WG-CA-02"]
    # WHEN applied anyway
    with pytest.raises(SafetyViolationError, match="WG-CA-02") as caught:
        await apply_policy_plan(
            policy_plan, api=ca_api, kv=aio(stores.kv), audit=aio(stores.audit), actor="a", correlation_id="c"
        )
    # THEN nothing was written or audited
    assert caught.value.rule == "policy-lint"
    assert ca_api.writes == []
    assert stores.audit.list() == []


async def test_a_live_policy_enabled_by_hand_without_report_only_blocks_the_apply(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN someone created the registration policy by hand, straight to enabled
    from shared.rollout.policies import render_policies

    body = next(p.body for p in render_policies(plan, tenant, {}) if p.key == "registration")
    ca_api.seed({**body, "state": "enabled"})
    policy_plan = await _plan(plan, tenant, ca_api, lookup, stores)
    assert [(f.check, f.policy) for f in policy_plan.lint.blocking] == [
        ("WG-CA-05", "WaveGuard - Require MFA registration")
    ]


async def test_an_apply_that_dies_halfway_is_finished_by_the_next_one(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN Graph refuses the third create
    original = ca_api.create_policy
    calls = {"n": 0}

    async def flaky(body: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise PermanentError("Graph answered 400")
        return await original(body)

    ca_api.create_policy = flaky
    with pytest.raises(PermanentError):
        await _apply(plan, tenant, ca_api, lookup, stores)
    assert len(ca_api.policies) == 2
    # WHEN applied again
    ca_api.create_policy = original
    result = await _apply(plan, tenant, ca_api, lookup, stores)
    # THEN only the missing three are created: one policy per name
    assert len(result.created) == 3
    assert len(ca_api.policies) == 5
    assert len({p["displayName"] for p in ca_api.policies.values()}) == 5


async def test_a_missing_wave_group_matters_only_once_the_wave_is_under_way(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    # GIVEN the pilot's group does not exist in the tenant yet
    no_pilot = TenantIds(
        tenant.break_glass_user_ids, tenant.exclusion_group_id, {**tenant.wave_group_ids, "pilot": None}
    )
    # WHILE the pilot is planned, the baseline is fine
    assert (await _plan(plan, no_pilot, ca_api, lookup, stores)).lint.ok
    # WHEN the pilot starts registering, its group is needed: the lint names the wave's config field
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REGISTERING, utc_now())
    blocking = (await _plan(plan, no_pilot, ca_api, lookup, stores)).lint.blocking
    assert [(f.check, f.field) for f in blocking] == [("WG-CA-02", "waves[0].group")]
    assert "(registering) not found in the tenant" in blocking[0].message
