"""The seed's two scenarios rendered: the low-risk relaxations (devices standing in for MFA, trusted
networks) on the wave policies only, and the high-risk pairs (sign-in risk, user risk, allowed
countries) following the waves like Require MFA, every one excluding break-glass."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import Policies, RolloutPlan
from shared.rollout.policies import REPORT_ONLY, TenantIds, render_policies
from shared.rollout.policies.locations import (
    COUNTRY_TYPE,
    IP_TYPE,
    is_pending,
    render_locations,
    trusted_key,
)
from shared.rollout.policies.render import SOAKED_PAIRS
from shared.rollout.wave_state import WaveState

OFFICE = {"name": "Head office", "ipRanges": ["203.0.114.0/24", "2001:4860:10::/48"]}
PLANNED = {"pilot": WaveState.PLANNED}
PILOT_ENFORCED_FINANCE_DARK = {"pilot": WaveState.ENFORCED, "finance-hr": WaveState.REPORT_ONLY}
HIGH_RISK_APP = "00000003-0000-0ff1-ce00-000000000000"


def with_options(plan: RolloutPlan, **options: Any) -> RolloutPlan:
    """The plan with these ``policies:`` options (camelCase, as in the YAML), validated."""
    policies = Policies.model_validate({**plan.policies.model_dump(by_alias=True), **options})
    return plan.model_copy(update={"policies": policies})


def seed_plan(plan: RolloutPlan) -> RolloutPlan:
    """Every new option on, as the seed's two scenarios describe them."""
    return with_options(
        plan,
        requireMfa={"satisfiedBy": ["compliantDevice", "domainJoinedDevice"]},
        trustedLocations=[OFFICE],
        signInRisk={"enabled": True},
        userRisk={"enabled": True},
        allowedCountries={"enabled": True, "countries": ["GB", "ie"], "outside": "block"},
        highRiskApps=[HIGH_RISK_APP],
    )


def _by_key(plan: RolloutPlan, tenant: TenantIds, states: dict[str, WaveState], ids: Any = None) -> Any:
    return {p.key: p for p in render_policies(plan, tenant, states, ids)}


def test_the_defaults_render_exactly_the_baseline_without_any_new_condition(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    policies = render_policies(plan, tenant, PLANNED)
    assert len(policies) == 5
    for policy in policies:
        assert "locations" not in policy.body["conditions"], policy.name
        assert "signInRiskLevels" not in policy.body["conditions"], policy.name
        assert "sessionControls" not in policy.body, policy.name
    assert render_locations(plan) == []


def test_devices_stand_in_for_mfa_on_the_wave_policies_only(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = _by_key(seed_plan(plan), tenant, PILOT_ENFORCED_FINANCE_DARK)
    either = {"operator": "OR", "builtInControls": ["mfa", "compliantDevice", "domainJoinedDevice"]}
    assert policies["mfa"].body["grantControls"] == either
    assert policies["mfa-report-only"].body["grantControls"] == either
    # administrators and high-risk apps: MFA, nothing instead of it, no location exempt
    assert policies["admins"].body["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert policies["high-risk-apps"].body["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert "locations" not in policies["admins"].body["conditions"]
    assert "locations" not in policies["high-risk-apps"].body["conditions"]


def test_trusted_networks_are_excluded_from_the_wave_mfa_policies_by_named_location_id(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    configured = seed_plan(plan)
    office_id = "11111111-1111-1111-1111-111111111111"
    policies = _by_key(configured, tenant, PLANNED, {trusted_key("Head office"): office_id})
    for key in ("mfa", "mfa-report-only"):
        assert policies[key].body["conditions"]["locations"] == {
            "includeLocations": ["All"],
            "excludeLocations": [office_id],
        }
    # the risk policies keep asking wherever the sign-in comes from
    for key in ("sign-in-risk-block", "sign-in-risk-mfa", "user-risk"):
        assert "locations" not in policies[key].body["conditions"]


def test_a_named_location_not_created_yet_is_referenced_by_a_pending_stand_in(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    policies = _by_key(seed_plan(plan), tenant, PLANNED)
    [office] = policies["mfa"].body["conditions"]["locations"]["excludeLocations"]
    assert is_pending(office)
    assert office.endswith(trusted_key("Head office"))


def test_the_named_locations_render_in_graphs_shape(plan: RolloutPlan) -> None:
    office, countries = render_locations(seed_plan(plan))
    assert office.body == {
        "@odata.type": IP_TYPE,
        "displayName": "WaveGuard - Trusted network: Head office",
        "isTrusted": False,
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:4860:10::/48"},
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.114.0/24"},
        ],
    }
    assert countries.body == {
        "@odata.type": COUNTRY_TYPE,
        "displayName": "WaveGuard - Allowed countries",
        "countriesAndRegions": ["GB", "IE"],
        "includeUnknownCountriesAndRegions": False,
        "countryLookupMethod": "clientIpAddress",
    }


def test_sign_in_risk_blocks_high_and_asks_mfa_every_time_at_medium(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    policies = _by_key(seed_plan(plan), tenant, PILOT_ENFORCED_FINANCE_DARK)
    block, mfa = policies["sign-in-risk-block"], policies["sign-in-risk-mfa"]
    assert block.name == "WaveGuard - Sign-in risk: block"
    assert block.body["conditions"]["signInRiskLevels"] == ["high"]
    assert block.body["grantControls"] == {"operator": "OR", "builtInControls": ["block"]}
    assert "sessionControls" not in block.body
    assert mfa.body["conditions"]["signInRiskLevels"] == ["medium"]
    assert mfa.body["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert mfa.body["sessionControls"]["signInFrequency"]["frequencyInterval"] == "everyTime"


def test_user_risk_requires_mfa_and_a_password_change_on_every_app(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    body = _by_key(seed_plan(plan), tenant, PLANNED)["user-risk"].body
    assert body["conditions"]["userRiskLevels"] == ["high"]
    assert body["conditions"]["applications"]["includeApplications"] == ["All"]
    assert body["grantControls"] == {"operator": "AND", "builtInControls": ["mfa", "passwordChange"]}
    assert body["sessionControls"]["signInFrequency"]["isEnabled"] is True


@pytest.mark.parametrize(("outside", "control"), [("block", "block"), ("mfa", "mfa")])
def test_sign_ins_outside_the_allowed_countries_are_blocked_or_asked_for_mfa(
    plan: RolloutPlan, tenant: TenantIds, outside: str, control: str
) -> None:
    configured = with_options(
        seed_plan(plan), allowedCountries={"enabled": True, "countries": ["GB"], "outside": outside}
    )
    ids = {"countries": "22222222-2222-2222-2222-222222222222", trusted_key("Head office"): "office-id"}
    body = _by_key(configured, tenant, PLANNED, ids)["countries"].body
    # the office network is ours wherever its egress lands (a VPN abroad is not "outside")
    assert body["conditions"]["locations"] == {
        "includeLocations": ["All"],
        "excludeLocations": sorted(["22222222-2222-2222-2222-222222222222", "office-id"]),
    }
    assert body["grantControls"]["builtInControls"] == [control]


def test_every_new_pair_follows_the_waves_and_starts_dark(plan: RolloutPlan, tenant: TenantIds) -> None:
    groups = tenant.wave_group_ids
    # WHEN nothing is under way: enforcing policies target nobody, report-only
    planned = _by_key(seed_plan(plan), tenant, PLANNED)
    # WHEN the pilot is enforced (and has soaked in each pair's twin) and finance-hr dark
    soaked = {key: {"pilot"} for key in SOAKED_PAIRS}
    moving = {
        p.key: p for p in render_policies(seed_plan(plan), tenant, PILOT_ENFORCED_FINANCE_DARK, soaked=soaked)
    }
    for key in ("sign-in-risk-block", "sign-in-risk-mfa", "user-risk", "countries"):
        assert planned[key].state == REPORT_ONLY
        assert planned[key].body["conditions"]["users"]["includeUsers"] == ["None"]
        assert moving[key].wave_driven
        assert moving[key].state == "enabled"
        assert moving[key].body["conditions"]["users"]["includeGroups"] == [groups["pilot"]]
        twin = moving[f"{key}-report-only"]
        assert twin.state == REPORT_ONLY
        assert twin.name.endswith(" (report-only waves)")
        assert twin.body["conditions"]["users"]["includeGroups"] == [groups["finance-hr"]]
        # never "All users": only the waves under way
        assert "All" not in moving[key].body["conditions"]["users"]["includeUsers"]


def test_an_enforced_wave_that_has_not_soaked_stays_in_each_block_or_risk_twin(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    groups = tenant.wave_group_ids
    # WHEN the pilot is enforced but has not yet soaked in the countries twin (it has in the others)
    soaked = {key: {"pilot"} for key in SOAKED_PAIRS if key != "countries"}
    policies = {
        p.key: p for p in render_policies(seed_plan(plan), tenant, PILOT_ENFORCED_FINANCE_DARK, soaked=soaked)
    }
    # THEN the countries pair keeps it report-only, alongside the dark wave; the MFA pair enforces it
    assert policies["countries"].body["conditions"]["users"]["includeUsers"] == ["None"]
    assert policies["countries"].state == REPORT_ONLY
    twin = policies["countries-report-only"].body["conditions"]["users"]["includeGroups"]
    assert twin == sorted([str(groups["pilot"]), str(groups["finance-hr"])])
    assert policies["sign-in-risk-block"].state == "enabled"
    assert policies["mfa"].body["conditions"]["users"]["includeGroups"] == [groups["pilot"]]


def test_every_policy_of_the_seed_plan_excludes_break_glass(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = render_policies(seed_plan(plan), tenant, PILOT_ENFORCED_FINANCE_DARK)
    assert len(policies) == 6 + 8
    for policy in policies:
        users = policy.body["conditions"]["users"]
        assert sorted(users["excludeUsers"]) == sorted(tenant.break_glass_user_ids), policy.name
        assert users["excludeGroups"] == [tenant.exclusion_group_id], policy.name


def test_sign_in_risk_levels_are_configurable_and_an_empty_list_renders_no_policy(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    configured = with_options(
        plan, signInRisk={"enabled": True, "blockLevels": [], "mfaLevels": ["high", "medium"]}
    )
    policies = _by_key(configured, tenant, PLANNED)
    assert "sign-in-risk-block" not in policies
    assert policies["sign-in-risk-mfa"].body["conditions"]["signInRiskLevels"] == ["medium", "high"]
