"""The safety lint: each check fails on the policy that breaks it, naming the policy and the field."""

from __future__ import annotations

import copy
from typing import Any

from shared.config import RolloutPlan
from shared.rollout.policies import TenantIds, lint_policies, render_policies
from shared.rollout.policies.lint import LintContext

MISSING_GROUP = "99999999-9999-9999-9999-999999999999"


def _ctx(tenant: TenantIds, **overrides: Any) -> LintContext:
    values: dict[str, Any] = {
        "tenant": tenant,
        "missing_users": frozenset(),
        "missing_groups": frozenset(),
        "missing_roles": frozenset(),
        "was_report_only": lambda policy_id: False,
    }
    return LintContext(**{**values, **overrides})


def _baseline(plan: RolloutPlan, tenant: TenantIds) -> list[dict[str, Any]]:
    return [copy.deepcopy(p.body) for p in render_policies(plan, tenant, {})]


def test_the_rendered_baseline_passes_every_check(plan: RolloutPlan, tenant: TenantIds) -> None:
    report = lint_policies(_baseline(plan, tenant), [], _ctx(tenant))
    assert report.ok
    assert report.findings == ()


def test_a_policy_without_the_break_glass_exclusion_is_rejected(plan: RolloutPlan, tenant: TenantIds) -> None:
    # GIVEN the registration policy lost the exclusion group and one account
    policies = _baseline(plan, tenant)
    users = policies[3]["conditions"]["users"]
    users["excludeGroups"] = []
    users["excludeUsers"] = [tenant.break_glass_user_ids[1]]
    # WHEN linted
    report = lint_policies(policies, [], _ctx(tenant))
    # THEN it fails WG-CA-01 twice, naming the policy and each field
    assert not report.ok
    assert [(f.check, f.policy, f.field) for f in report.blocking] == [
        ("WG-CA-01", "WaveGuard - Require MFA registration", "conditions.users.excludeUsers"),
        ("WG-CA-01", "WaveGuard - Require MFA registration", "conditions.users.excludeGroups"),
    ]
    assert tenant.break_glass_user_ids[0] in report.blocking[0].message


def test_a_policy_referencing_a_missing_group_is_rejected(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = _baseline(plan, tenant)
    policies[1]["conditions"]["users"]["includeGroups"] = [MISSING_GROUP]
    report = lint_policies(policies, [], _ctx(tenant, missing_groups=frozenset({MISSING_GROUP})))
    assert [str(f) for f in report.blocking] == [
        f"[WG-CA-02] error: 'WaveGuard - Require MFA' conditions.users.includeGroups: "
        f"group {MISSING_GROUP} does not exist in the tenant"
    ]


def test_unresolved_plan_references_are_reported_with_their_config_field(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    problem = "waves[0].group: group WaveGuard - Wave 1 Pilot of wave 'pilot' not found"
    broken = TenantIds(
        tenant.break_glass_user_ids, tenant.exclusion_group_id, tenant.wave_group_ids, (problem,)
    )
    report = lint_policies(_baseline(plan, tenant), [], _ctx(broken))
    assert [(f.check, f.field) for f in report.blocking] == [("WG-CA-02", "waves[0].group")]


def test_legacy_auth_must_be_blocked_and_registration_protected(plan: RolloutPlan, tenant: TenantIds) -> None:
    # GIVEN a baseline without the legacy block and whose registration policy is disabled
    policies = _baseline(plan, tenant)[1:]
    policies[2]["state"] = "disabled"
    report = lint_policies(policies, [], _ctx(tenant))
    assert [(f.check, f.field) for f in report.blocking] == [
        ("WG-CA-03", "policies.blockLegacyAuth"),
        ("WG-CA-04", "policies.requireMfaRegistration"),
    ]
    # AND when the plan turned them off on purpose they are warnings, not blockers
    relaxed = lint_policies(policies, [], _ctx(tenant, legacy_block_wanted=False, registration_wanted=False))
    assert relaxed.ok
    assert [(f.check, f.severity) for f in relaxed.findings] == [
        ("WG-CA-03", "warning"),
        ("WG-CA-04", "warning"),
    ]


def test_nothing_enabled_that_was_never_report_only(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = _baseline(plan, tenant)
    policies[1].update({"id": "p-1", "state": "enabled"})
    refused = lint_policies(policies, [], _ctx(tenant))
    assert [(f.check, f.policy, f.field) for f in refused.blocking] == [
        ("WG-CA-05", "WaveGuard - Require MFA", "state")
    ]
    # WHEN WaveGuard saw it in report-only before, enabling it is a promotion, not a violation
    allowed = lint_policies(policies, [], _ctx(tenant, was_report_only=lambda policy_id: policy_id == "p-1"))
    assert allowed.ok


def test_findings_on_live_policies_are_reported_without_blocking(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    # GIVEN a live policy missing the exclusion group, which the apply would restore
    live = _baseline(plan, tenant)
    live[0]["conditions"]["users"]["excludeGroups"] = []
    report = lint_policies(_baseline(plan, tenant), live, _ctx(tenant))
    assert report.ok
    assert [(f.check, f.scope) for f in report.findings] == [("WG-CA-01", "live")]


def test_two_live_policies_with_one_name_are_rejected(plan: RolloutPlan, tenant: TenantIds) -> None:
    policies = _baseline(plan, tenant)
    policies.append({**copy.deepcopy(policies[0]), "id": "dup-2"})
    policies[0]["id"] = "dup-1"
    report = lint_policies(policies, [], _ctx(tenant))
    assert {(f.check, f.policy) for f in report.blocking} == {
        ("WG-CA-06", "WaveGuard - Block legacy authentication")
    }
