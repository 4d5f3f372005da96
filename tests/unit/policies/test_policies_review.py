"""What the baseline must never do: relax MFA for administrators through a wave policy (WG-CA-07),
hold back a rollback (WG-CA-07/08/10 only warn when the apply only takes enforcement away), leave a
policy of an option turned off enforcing unmanaged, lose track of the renamed admin policy, or
guess at licences it could not read."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.config import RolloutPlan
from shared.rollout.policies import (
    REPORT_ONLY,
    ApplyResult,
    PolicyPlan,
    TenantIds,
    apply_policy_plan,
    build_policy_plan,
    record_report_only,
)
from shared.rollout.policies.templates import AZURE_MANAGEMENT_APP_ID, Exclusions, admin_mfa
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import StateStores
from tests.aio import aio
from tests.unit.policies.conftest import BG_GROUP, BG_USERS, WAVE_GROUPS, FakeCaApi, FakeLookup
from tests.unit.policies.test_policies_seed_render import with_options

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)
PILOT = WAVE_GROUPS["pilot"]
RELAXED = {
    "requireMfa": {"satisfiedBy": ["compliantDevice"]},
    "trustedLocations": [{"name": "HQ", "ipRanges": ["198.51.101.0/24"]}],
}


async def _plan(
    plan: RolloutPlan, tenant: TenantIds, api: Any, lookup: Any, stores: StateStores, **kw: Any
) -> PolicyPlan:
    now = kw.pop("now", T0)
    return await build_policy_plan(
        plan, api=api, lookup=lookup, tenant=tenant, kv=aio(stores.kv), clock=lambda: now, **kw
    )


async def _apply(policy_plan: PolicyPlan, api: Any, stores: StateStores, now: datetime = T0) -> ApplyResult:
    assert policy_plan.lint.ok, [str(f) for f in policy_plan.lint.blocking]
    return await apply_policy_plan(
        policy_plan,
        api=api,
        kv=aio(stores.kv),
        audit=aio(stores.audit),
        actor="t",
        correlation_id="c",
        clock=lambda: now,
    )


def _errors(policy_plan: PolicyPlan, check: str) -> list[str]:
    return [f.message for f in policy_plan.lint.blocking if f.check == check]


# --- 3. WG-CA-07: relaxations only while the administrators' policy is enabled on every app


async def test_a_relaxed_require_mfa_is_refused_while_the_admin_policy_is_not_enabled(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    relaxed = with_options(plan, **RELAXED)
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, T0)
    # GIVEN the baseline created (report-only: nothing enforced yet, so nothing to refuse)
    await _apply(await _plan(relaxed, tenant, ca_api, lookup, stores), ca_api, stores)
    # WHEN the next apply would enable the relaxed Require MFA for the pilot
    second = await _plan(relaxed, tenant, ca_api, lookup, stores)
    # THEN it is refused, naming the admin policy and what to do
    [message] = _errors(second, "WG-CA-07")
    assert "Administrators: MFA and compliant device on every app' is not enabled" in message
    assert "enable it in the Microsoft Entra admin center" in message
    assert "remove policies.requireMfa.satisfiedBy and policies.trustedLocations" in message
    # AND once an operator has enabled the admin policy, it goes through
    ca_api.by_name("on every app")["state"] = "enabled"
    third = await _plan(relaxed, tenant, ca_api, lookup, stores)
    assert _errors(third, "WG-CA-07") == []
    await _apply(third, ca_api, stores)
    assert ca_api.by_name("- Require MFA")["state"] == "enabled"


async def test_a_relaxed_require_mfa_is_refused_when_the_plan_has_no_admin_policy(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    relaxed = with_options(plan, adminPolicy={"enabled": False}, **RELAXED)
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, T0)
    await _apply(await _plan(relaxed, tenant, ca_api, lookup, stores), ca_api, stores)
    [message] = _errors(await _plan(relaxed, tenant, ca_api, lookup, stores), "WG-CA-07")
    assert "policies.adminPolicy.enabled is false" in message


# --- 4. a rollback always goes through


async def _enforced_risk_baseline(
    plan: RolloutPlan, tenant: TenantIds, api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> RolloutPlan:
    risky = with_options(
        plan, signInRisk={"enabled": True}, allowedCountries={"enabled": True, "countries": ["GB"]}
    )
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, T0)
    for now in (T0, LATER):  # created with the pilot in the twins, then enforced once it has soaked
        await _apply(
            await _plan(risky, tenant, api, lookup, stores, licence_p2=True, now=now), api, stores, now
        )
    assert api.by_name("Sign-in risk: block")["state"] == "enabled"
    assert api.by_name("outside allowed countries")["state"] == "enabled"
    return risky


async def test_a_rollback_goes_through_when_p2_lapsed_or_a_named_location_is_duplicated(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    risky = await _enforced_risk_baseline(plan, tenant, ca_api, lookup, stores)
    await ca_api.create_named_location(
        {
            "@odata.type": "#microsoft.graph.countryNamedLocation",
            "displayName": "WaveGuard - Allowed countries",
            "countriesAndRegions": ["FR"],
        }
    )
    # GIVEN P2 lapsed and a duplicate WaveGuard named location: a plan that adds nothing is refused
    steady = await _plan(risky, tenant, ca_api, lookup, stores, licence_p2=False, now=LATER)
    assert _errors(steady, "WG-CA-10")
    # WHEN the pilot is rolled back
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, LATER)
    rollback = await _plan(risky, tenant, ca_api, lookup, stores, licence_p2=False, now=LATER)
    # THEN the same findings only warn, and the rollback is applied (risk policies written last)
    assert rollback.lint.ok
    assert rollback.lint.reduces_only
    assert {f.check for f in rollback.lint.findings if f.scope == "after-apply"} >= {"WG-CA-08", "WG-CA-10"}
    await _apply(rollback, ca_api, stores, LATER)
    for title in ("- Require MFA", "Sign-in risk: block", "outside allowed countries"):
        assert ca_api.by_name(title)["state"] != "enabled"
    names = [ca_api.policies[pid]["displayName"] for kind, pid, _ in ca_api.writes[-6:] if kind == "update"]
    assert "risk" in names[-1]


async def test_an_apply_that_adds_enforcement_is_still_refused_without_p2(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    risky = await _enforced_risk_baseline(plan, tenant, ca_api, lookup, stores)
    await write_wave_state(aio(stores.kv), "finance-hr", WaveState.ENFORCED, LATER)
    adding = await _plan(risky, tenant, ca_api, lookup, stores, licence_p2=False, now=LATER)
    assert not adding.lint.reduces_only
    assert _errors(adding, "WG-CA-08")


# --- 5. an option turned off: its enabled policies are set report-only, audited


async def test_turning_an_option_off_sets_its_enabled_policy_report_only(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    await _enforced_risk_baseline(plan, tenant, ca_api, lookup, stores)
    # WHEN the plan no longer has the options
    off = await _plan(plan, tenant, ca_api, lookup, stores, now=LATER)
    retired = sorted(c.name for c in off.diff.changes if c.kind == "retire")
    assert retired == [
        "WaveGuard - Sign-in risk: block",
        "WaveGuard - Sign-in risk: require MFA",
        "WaveGuard - Sign-ins outside allowed countries",
    ]
    assert any("set report-only" in note for note in off.notes)
    await _apply(off, ca_api, stores, LATER)
    # THEN they no longer enforce, and each write is audited as a retirement
    for title in retired:
        assert (
            ca_api.by_name(title.removeprefix("WaveGuard "))["state"] == "enabledForReportingButNotEnforced"
        )
    actions = [e.action for e in stores.audit.list()]
    assert actions.count("ca.policy.retire") == 3
    # AND the next plan has nothing left to do for them (report-only orphans are left alone)
    again = await _plan(plan, tenant, ca_api, lookup, stores, now=LATER)
    assert [c for c in again.diff.changes if c.kind == "retire"] == []


async def test_the_p2_advice_says_what_turning_the_option_off_does(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    risky = with_options(plan, signInRisk={"enabled": True})
    policy_plan = await _plan(risky, tenant, ca_api, lookup, stores, licence_p2=False)
    message = _errors(policy_plan, "WG-CA-08")[0]
    assert "the next apply takes WaveGuard's risk policies out of enforcement" in message


# --- 6. the renamed admin policy stays managed


async def test_the_legacy_admin_policy_stays_managed_until_deleted(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, T0)
    await _apply(await _plan(plan, tenant, ca_api, lookup, stores), ca_api, stores)
    legacy = admin_mfa(
        "WaveGuard - Administrators: MFA and compliant device for Azure management",
        Exclusions(BG_USERS, (BG_GROUP,)),
        role_ids=plan.policies.admin_policy.roles,
        require_compliant_device=False,
        state="enabled",
    )
    legacy["conditions"]["applications"]["includeApplications"] = [AZURE_MANAGEMENT_APP_ID]
    legacy_id = ca_api.seed(copy.deepcopy(legacy))
    # (it ran report-only once, before an operator enabled it)
    seen = {**legacy, "id": legacy_id, "state": REPORT_ONLY}
    await record_report_only(aio(stores.kv), seen, correlation_id="x", now=T0)
    # WHEN a break-glass account is added and the pilot rolled back
    extra = "00000000-0000-0000-0000-0000000000b3"
    grown = TenantIds((*BG_USERS, extra), BG_GROUP, dict(WAVE_GROUPS))
    wider = FakeLookup([*BG_USERS, extra], [BG_GROUP, *WAVE_GROUPS.values()])
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, T0)
    policy_plan = await _plan(plan, grown, ca_api, wider, stores)
    # THEN it is not an orphan, the plan says to delete it, and the rollback goes through
    assert policy_plan.diff.orphans == ()
    assert any("legacy admin policy: delete it once the new one" in note for note in policy_plan.notes)
    result = await _apply(policy_plan, ca_api, stores)
    assert result.notes == policy_plan.notes
    # AND only its exclusions changed: same apps, same state
    after = ca_api.policies[legacy_id]
    assert extra in after["conditions"]["users"]["excludeUsers"]
    assert after["conditions"]["applications"]["includeApplications"] == [AZURE_MANAGEMENT_APP_ID]
    assert after["state"] == "enabled"


# --- 9. licences that could not be read


async def test_p2_conditions_are_refused_when_the_licences_could_not_be_read(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: FakeLookup, stores: StateStores
) -> None:
    risky = with_options(plan, userRisk={"enabled": True})
    why = "could not read /subscribedSkus: Forbidden"
    policy_plan = await _plan(risky, tenant, ca_api, lookup, stores, licence_unreadable=why)
    messages = _errors(policy_plan, "WG-CA-08")
    assert messages
    assert all("LicenseAssignment.Read.All" in m and why in m for m in messages)
    # AND a plan without P2 conditions is not bothered by it
    plain = await _plan(plan, tenant, ca_api, lookup, stores, licence_unreadable=why)
    assert _errors(plain, "WG-CA-08") == []
