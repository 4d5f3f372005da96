"""The baseline rendered from the plan: the right policies in Graph's shape, all excluding break-glass."""

from __future__ import annotations

from typing import Any

from shared.config import RolloutPlan
from shared.rollout.policies import REPORT_ONLY, TenantIds, render_policies
from shared.rollout.wave_state import WaveState

PLANNED = {"pilot": WaveState.PLANNED}


def _by_key(plan: RolloutPlan, tenant: TenantIds, states: dict[str, WaveState]) -> dict[str, Any]:
    return {p.key: p for p in render_policies(plan, tenant, states)}


def test_an_untouched_plan_renders_the_five_baseline_policies_all_report_only(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    # GIVEN the example plan and no wave started
    policies = render_policies(plan, tenant, PLANNED)
    # THEN five policies, named with the prefix, none enforcing anything yet
    assert [p.name for p in policies] == [
        "WaveGuard - Block legacy authentication",
        "WaveGuard - Require MFA",
        "WaveGuard - Require MFA (report-only waves)",
        "WaveGuard - Require MFA registration",
        "WaveGuard - Administrators: MFA and compliant device on every app",
    ]
    assert {p.state for p in policies} == {REPORT_ONLY}


def test_every_policy_excludes_the_break_glass_accounts_and_group(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    for policy in render_policies(plan, tenant, {"pilot": WaveState.ENFORCED}):
        users = policy.body["conditions"]["users"]
        assert sorted(users["excludeUsers"]) == sorted(tenant.break_glass_user_ids), policy.name
        assert users["excludeGroups"] == [tenant.exclusion_group_id], policy.name


def test_legacy_authentication_is_blocked_for_everyone_on_every_app(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    body = _by_key(plan, tenant, PLANNED)["legacy"].body
    assert body["conditions"]["clientAppTypes"] == ["exchangeActiveSync", "other"]
    assert body["conditions"]["users"]["includeUsers"] == ["All"]
    assert body["conditions"]["applications"]["includeApplications"] == ["All"]
    assert body["grantControls"] == {"operator": "OR", "builtInControls": ["block"]}


def test_registration_policy_requires_mfa_for_the_register_security_info_action(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    body = _by_key(plan, tenant, PLANNED)["registration"].body
    assert body["conditions"]["applications"]["includeUserActions"] == ["urn:user:registersecurityinfo"]
    assert body["conditions"]["applications"]["includeApplications"] == []
    assert body["grantControls"]["builtInControls"] == ["mfa"]


def test_admin_policy_targets_the_configured_roles_on_every_app(plan: RolloutPlan, tenant: TenantIds) -> None:
    # "MFA for administrators": every app, not only Azure management (the seed's wording; a wave's
    # relaxations must never reach an administrator anywhere)
    body = _by_key(plan, tenant, PLANNED)["admins"].body
    assert body["conditions"]["users"]["includeRoles"] == sorted(plan.policies.admin_policy.roles)
    assert body["conditions"]["applications"]["includeApplications"] == ["All"]
    assert "locations" not in body["conditions"]
    # requireCompliantDevice is false in the example: MFA only
    assert body["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    strict = plan.model_copy(
        update={
            "policies": plan.policies.model_copy(
                update={
                    "admin_policy": plan.policies.admin_policy.model_copy(
                        update={"require_compliant_device": True}
                    )
                }
            )
        }
    )
    body = _by_key(strict, tenant, PLANNED)["admins"].body
    assert body["grantControls"] == {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]}


def test_waves_in_their_dark_phase_join_the_report_only_twin(plan: RolloutPlan, tenant: TenantIds) -> None:
    # GIVEN the pilot registering and finance-hr in report-only
    states = {"pilot": WaveState.REGISTERING, "finance-hr": WaveState.REPORT_ONLY}
    policies = _by_key(plan, tenant, states)
    twin = policies["mfa-report-only"].body
    # THEN both groups are in the twin (report-only), and the enforcing policy targets nobody yet
    groups = tenant.wave_group_ids
    assert twin["conditions"]["users"]["includeGroups"] == sorted([groups["pilot"], groups["finance-hr"]])
    assert twin["state"] == REPORT_ONLY
    assert policies["mfa"].body["conditions"]["users"]["includeUsers"] == ["None"]
    assert policies["mfa"].state == REPORT_ONLY


def test_an_enforced_wave_moves_into_the_enabled_mfa_policy(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = _by_key(plan, tenant, {"pilot": WaveState.ENFORCED, "finance-hr": WaveState.REPORT_ONLY})
    mfa = policies["mfa"]
    assert mfa.wave_driven
    assert mfa.state == "enabled"
    assert mfa.body["conditions"]["users"]["includeGroups"] == [tenant.wave_group_ids["pilot"]]
    assert mfa.body["conditions"]["users"]["includeUsers"] == []
    twin = policies["mfa-report-only"].body
    assert twin["conditions"]["users"]["includeGroups"] == [tenant.wave_group_ids["finance-hr"]]


def test_high_risk_apps_get_their_own_policy_when_configured(plan: RolloutPlan, tenant: TenantIds) -> None:
    app = "00000003-0000-0ff1-ce00-000000000000"
    configured = plan.model_copy(
        update={"policies": plan.policies.model_copy(update={"high_risk_apps": [app]})}
    )
    policy = _by_key(configured, tenant, PLANNED)["high-risk-apps"]
    assert policy.name == "WaveGuard - MFA for high-risk apps"
    assert policy.body["conditions"]["applications"]["includeApplications"] == [app]
    assert policy.body["conditions"]["users"]["excludeGroups"] == [tenant.exclusion_group_id]


def test_disabled_parts_of_the_baseline_are_not_rendered(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = plan.policies.model_copy(
        update={"block_legacy_auth": False, "require_mfa_registration": False}
    )
    keys = set(_by_key(plan.model_copy(update={"policies": policies}), tenant, PLANNED))
    assert keys == {"mfa", "mfa-report-only", "admins"}
