"""The lint's new refusals (WG-CA-07 to WG-CA-10) and the apply of named locations before the policies
that reference them, over the in-memory fakes."""

from __future__ import annotations

import copy
from typing import Any

from shared.config import RolloutPlan
from shared.rollout.policies import (
    ApplyResult,
    PolicyPlan,
    TenantIds,
    apply_policy_plan,
    build_policy_plan,
    lint_policies,
    render_policies,
)
from shared.rollout.policies.lint import LintContext
from shared.rollout.policies.locations import IP_TYPE, is_pending
from shared.rollout.policies.preflight import Preflight, PreflightFinding
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import StateStores, utc_now
from tests.aio import aio
from tests.unit.policies.test_policies_seed_render import HIGH_RISK_APP, seed_plan, with_options

OFFICE_ID = "33333333-3333-3333-3333-333333333333"


def _ctx(tenant: TenantIds, **overrides: Any) -> LintContext:
    values: dict[str, Any] = {
        "tenant": tenant,
        "missing_users": frozenset(),
        "missing_groups": frozenset(),
        "missing_roles": frozenset(),
        "was_report_only": lambda policy_id: False,
    }
    return LintContext(**{**values, **overrides})


def _bodies(plan: RolloutPlan, tenant: TenantIds) -> dict[str, dict[str, Any]]:
    return {p.key: copy.deepcopy(p.body) for p in render_policies(plan, tenant, {})}


def _blocking(report: Any) -> list[tuple[str, str | None, str | None]]:
    return [(f.check, f.policy, f.field) for f in report.blocking]


def test_the_seed_plan_passes_every_check_on_a_p2_tenant(plan: RolloutPlan, tenant: TenantIds) -> None:
    bodies = list(_bodies(seed_plan(plan), tenant).values())
    report = lint_policies(bodies, [], _ctx(tenant, licence_p2=True, location_ids=frozenset()))
    assert report.findings == ()


def test_a_device_standing_in_for_mfa_on_the_admin_policy_is_refused(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    # GIVEN someone relaxed the administrators' policy as the wave policies are
    bodies = _bodies(seed_plan(plan), tenant)
    bodies["admins"]["grantControls"] = {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]}
    report = lint_policies(list(bodies.values()), [], _ctx(tenant, licence_p2=True))
    # THEN WG-CA-07 names the policy and the field, and says what to do
    assert _blocking(report) == [
        (
            "WG-CA-07",
            "WaveGuard - Administrators: MFA and compliant device on every app",
            "grantControls.operator",
        )
    ]
    assert "OR lets compliantDevice replace MFA" in report.blocking[0].message
    assert "mfa AND compliantDevice" in report.blocking[0].message


def test_mfa_and_a_compliant_device_for_administrators_passes(plan: RolloutPlan, tenant: TenantIds) -> None:
    strict = with_options(seed_plan(plan), adminPolicy={"requireCompliantDevice": True})
    report = lint_policies(list(_bodies(strict, tenant).values()), [], _ctx(tenant, licence_p2=True))
    assert report.ok


def test_a_trusted_network_exempting_the_high_risk_apps_is_refused(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    bodies = _bodies(seed_plan(plan), tenant)
    bodies["high-risk-apps"]["conditions"]["locations"] = {
        "includeLocations": ["All"],
        "excludeLocations": ["AllTrusted"],
    }
    report = lint_policies(list(bodies.values()), [], _ctx(tenant, licence_p2=True))
    assert _blocking(report) == [("WG-CA-07", "WaveGuard - MFA for high-risk apps", "conditions.locations")]
    assert "policies.trustedLocations applies to the wave policies only" in report.blocking[0].message
    assert HIGH_RISK_APP in bodies["high-risk-apps"]["conditions"]["applications"]["includeApplications"]


def test_risk_policies_on_a_tenant_with_only_p1_are_refused(plan: RolloutPlan, tenant: TenantIds) -> None:
    bodies = list(_bodies(seed_plan(plan), tenant).values())
    report = lint_policies(bodies, [], _ctx(tenant, licence_p2=False))
    blocking = _blocking(report)
    assert {check for check, _, _ in blocking} == {"WG-CA-08"}
    assert ("WG-CA-08", "WaveGuard - Sign-in risk: block", "conditions.signInRiskLevels") in blocking
    assert (
        "WG-CA-08",
        "WaveGuard - User risk: require password change",
        "conditions.userRiskLevels",
    ) in blocking
    assert len(blocking) == 6  # three pairs with a risk condition
    assert "set policies.signInRisk.enabled: false" in report.blocking[0].message


def test_a_reference_to_a_named_location_that_is_gone_is_refused(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    bodies = _bodies(seed_plan(plan), tenant)
    bodies["mfa"]["conditions"]["locations"]["excludeLocations"] = [OFFICE_ID]
    report = lint_policies(list(bodies.values()), [], _ctx(tenant, licence_p2=True, location_ids=frozenset()))
    assert _blocking(report) == [
        ("WG-CA-09", "WaveGuard - Require MFA", "conditions.locations.excludeLocations")
    ]
    assert OFFICE_ID in report.blocking[0].message


async def _plan(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores, **kw: Any
) -> PolicyPlan:
    return await build_policy_plan(plan, api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv), **kw)


async def _apply(policy_plan: PolicyPlan, ca_api: Any, stores: StateStores) -> ApplyResult:
    return await apply_policy_plan(
        policy_plan,
        api=ca_api,
        kv=aio(stores.kv),
        audit=aio(stores.audit),
        actor="cli:test",
        correlation_id="corr-1",
    )


async def test_named_locations_are_written_first_and_the_policies_reference_their_new_ids(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    configured = seed_plan(plan)
    # WHEN planned on an empty tenant: two named locations and 14 policies to create
    policy_plan = await _plan(configured, tenant, ca_api, lookup, stores, licence_p2=True)
    assert policy_plan.lint.ok, policy_plan.lint.findings
    assert [c.kind for c in policy_plan.locations.changes] == ["create", "create"]
    assert policy_plan.diff.count("create") == 14
    result = await _apply(policy_plan, ca_api, stores)
    # THEN the named locations were created before any policy, and no stand-in reached Graph
    kinds = [kind for kind, _, _ in ca_api.writes]
    assert kinds[:2] == ["location-create", "location-create"]
    assert kinds[2:] == ["create"] * 14
    assert result.writes == 16
    office_id = next(i for i, loc in ca_api.locations.items() if loc["@odata.type"] == IP_TYPE)
    mfa = ca_api.by_name("Require MFA")
    assert mfa["conditions"]["locations"]["excludeLocations"] == [office_id]
    assert not any(is_pending(str(body)) for _, _, body in ca_api.writes)
    assert {e.action for e in stores.audit.list()} == {"ca.namedLocation.create", "ca.policy.create"}
    # AND a re-plan finds nothing to do
    again = await _plan(configured, tenant, ca_api, lookup, stores, licence_p2=True)
    assert not again.has_changes
    assert [c.kind for c in again.locations.changes] == ["unchanged", "unchanged"]


async def test_a_changed_office_range_is_one_named_location_update_and_no_policy_write(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    await _apply(
        await _plan(seed_plan(plan), tenant, ca_api, lookup, stores, licence_p2=True), ca_api, stores
    )
    moved = with_options(
        seed_plan(plan), trustedLocations=[{"name": "Head office", "ipRanges": ["198.51.101.0/24"]}]
    )
    policy_plan = await _plan(moved, tenant, ca_api, lookup, stores, licence_p2=True)
    [change] = policy_plan.locations.writes
    assert change.kind == "update"
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        ("ipRanges", ["2001:4860:10::/48", "203.0.114.0/24"], ["198.51.101.0/24"])
    ]
    assert policy_plan.diff.writes == ()
    before = len(ca_api.writes)
    await _apply(policy_plan, ca_api, stores)
    [(kind, _, body)] = ca_api.writes[before:]
    assert kind == "location-update"
    assert body["@odata.type"] == IP_TYPE  # Graph wants the type in a named location PATCH


async def test_a_live_location_of_the_other_kind_blocks_the_apply(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    ca_api.locations["x"] = {
        "id": "x",
        "@odata.type": "#microsoft.graph.countryNamedLocation",
        "displayName": "WaveGuard - Trusted network: Head office",
        "countriesAndRegions": ["GB"],
    }
    policy_plan = await _plan(seed_plan(plan), tenant, ca_api, lookup, stores, licence_p2=True)
    assert [(f.check, f.field) for f in policy_plan.lint.blocking] == [("WG-CA-10", "@odata.type")]


async def test_without_named_locations_in_plan_or_policies_none_are_read(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    policy_plan = await _plan(plan, tenant, ca_api, lookup, stores)
    assert ca_api.location_reads == 0
    assert policy_plan.locations.changes == ()


async def test_the_preflight_licence_reaches_the_lint_and_a_p1_tenant_refuses_the_risk_plan(
    plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores
) -> None:
    p1_only = Preflight(
        (
            PreflightFinding("licence-p1", ok=True, detail="P1"),
            PreflightFinding("licence-p2", ok=False, detail="no P2"),
        )
    )
    assert p1_only.licence_p2 is False
    assert Preflight(()).licence_p2 is None
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now())
    configured = with_options(plan, signInRisk={"enabled": True})
    policy_plan = await _plan(configured, tenant, ca_api, lookup, stores, licence_p2=p1_only.licence_p2)
    assert not policy_plan.lint.ok
    assert {f.check for f in policy_plan.lint.blocking} == {"WG-CA-08"}
