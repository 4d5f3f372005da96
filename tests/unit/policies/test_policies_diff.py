"""Desired vs live: create / update field by field / unchanged; order and server fields do not count."""

from __future__ import annotations

import copy
from typing import Any

from shared.config import RolloutPlan
from shared.rollout.policies import TenantIds, diff_policies, render_policies
from shared.rollout.policies.diff import patch_body
from shared.rollout.wave_state import WaveState

PREFIX = "WaveGuard - "


def _live(body: dict[str, Any], policy_id: str = "11111111-1111-1111-1111-111111111111") -> dict[str, Any]:
    """The policy as Graph returns it: server fields, nulls for unset properties, lists reordered."""
    live = copy.deepcopy(body)
    live.update(
        {
            "id": policy_id,
            "createdDateTime": "2026-11-01T00:00:00Z",
            "modifiedDateTime": None,
            "templateId": None,
            "sessionControls": None,
            "@odata.context": "x",
        }
    )
    live["conditions"].update({"locations": None, "platforms": None, "userRiskLevels": []})
    for values in live["conditions"]["users"].values():
        values.reverse()
    return live


def test_nothing_live_means_every_policy_is_created(plan: RolloutPlan, tenant: TenantIds) -> None:
    desired = render_policies(plan, tenant, {})
    diff = diff_policies(desired, [], PREFIX)
    assert [c.kind for c in diff.changes] == ["create"] * 5
    assert diff.count("create") == 5
    assert not diff.orphans


def test_live_policies_as_graph_returns_them_are_unchanged(plan: RolloutPlan, tenant: TenantIds) -> None:
    # GIVEN the live policies equal the desired ones, except for order, nulls and server fields
    desired = render_policies(plan, tenant, {})
    live = [_live(p.body, f"{i:08d}-0000-0000-0000-000000000000") for i, p in enumerate(desired)]
    # WHEN diffed
    diff = diff_policies(desired, live, PREFIX)
    # THEN nothing to do
    assert [c.kind for c in diff.changes] == ["unchanged"] * 5
    assert not diff.writes


def test_a_removed_break_glass_exclusion_is_an_update_naming_the_field(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    desired = render_policies(plan, tenant, {})
    live = [_live(p.body) for p in desired]
    # GIVEN someone removed one break-glass account from the legacy policy by hand
    removed = tenant.break_glass_user_ids[0]
    live[0]["conditions"]["users"]["excludeUsers"].remove(removed)
    # WHEN diffed
    change = diff_policies(desired, live, PREFIX).changes[0]
    # THEN one update, naming the JSON path with old and new values
    assert change.kind == "update"
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        (
            "conditions.users.excludeUsers",
            [tenant.break_glass_user_ids[1]],
            sorted(tenant.break_glass_user_ids),
        )
    ]
    # AND the PATCH carries the whole conditions object from the desired policy
    patch = patch_body(change)
    assert list(patch) == ["conditions"]
    assert sorted(patch["conditions"]["users"]["excludeUsers"]) == sorted(tenant.break_glass_user_ids)


def test_a_hand_added_condition_is_cleared_with_an_explicit_null(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    desired = render_policies(plan, tenant, {})
    live = [_live(p.body) for p in desired]
    live[3]["conditions"]["locations"] = {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}
    change = diff_policies(desired, live, PREFIX).changes[3]
    assert {f.path for f in change.fields} == {
        "conditions.locations.includeLocations",
        "conditions.locations.excludeLocations",
    }
    assert patch_body(change)["conditions"]["locations"] is None


def test_state_of_a_baseline_policy_is_left_to_the_operator(plan: RolloutPlan, tenant: TenantIds) -> None:
    # GIVEN an operator enabled the legacy-auth block after its report-only soak
    desired = render_policies(plan, tenant, {})
    live = [_live(p.body) for p in desired]
    live[0]["state"] = "enabled"
    # THEN the plan keeps the live state: no update
    assert diff_policies(desired, live, PREFIX).changes[0].kind == "unchanged"


def test_a_wave_promotion_updates_the_mfa_policy_state_and_groups(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    before = render_policies(plan, tenant, {"pilot": WaveState.REPORT_ONLY})
    live = [_live(p.body) for p in before]
    after = render_policies(plan, tenant, {"pilot": WaveState.ENFORCED})
    changes = {c.desired.key: c for c in diff_policies(after, live, PREFIX).changes}
    mfa = {f.path: (f.old, f.new) for f in changes["mfa"].fields}
    pilot = tenant.wave_group_ids["pilot"]
    assert mfa == {
        "state": ("enabledForReportingButNotEnforced", "enabled"),
        "conditions.users.includeGroups": (None, [pilot]),
        "conditions.users.includeUsers": (["None"], None),
    }
    twin = {f.path: (f.old, f.new) for f in changes["mfa-report-only"].fields}
    assert twin == {
        "conditions.users.includeGroups": ([pilot], None),
        "conditions.users.includeUsers": (None, ["None"]),
    }
    assert patch_body(changes["mfa"])["state"] == "enabled"


def test_other_tenants_policies_are_ignored_and_stale_waveguard_ones_reported(
    plan: RolloutPlan, tenant: TenantIds
) -> None:
    desired = render_policies(plan, tenant, {})
    theirs = _live({**desired[0].body, "displayName": "Contoso - Block legacy"}, "a")
    stale = _live({**desired[0].body, "displayName": "WaveGuard - MFA for high-risk apps"}, "b")
    diff = diff_policies(desired, [theirs, stale], PREFIX)
    assert diff.count("create") == 5
    assert [p["id"] for p in diff.orphans] == ["b"]
