"""Conditional Access policies: CRUD in Graph's shape, Graph's validation, the 1-per-second limit."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.models.conditional_access_policy_state import ConditionalAccessPolicyState
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional


def require_mfa(emulator: EmulatorHandle, **changes: Any) -> dict[str, Any]:
    assert emulator.demo is not None
    policy: dict[str, Any] = {
        "displayName": "WaveGuard - Require MFA - IT pilot",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {
                "includeGroups": [emulator.demo.it_pilot_group_id],
                "excludeGroups": [emulator.demo.break_glass_group_id],
                "excludeUsers": list(emulator.demo.break_glass_ids),
            },
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    policy.update(changes)
    return policy


def policies_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/identity/conditionalAccess/policies"


async def test_create_then_the_sdk_reads_it_back_in_graphs_shape(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN a report-only "require MFA" policy for the IT pilot excluding break glass
    assert emulator.demo is not None
    created = await http.post(policies_url(emulator), json=require_mfa(emulator))
    assert created.status_code == 201
    body = created.json()
    assert body["@odata.type"] == "#microsoft.graph.conditionalAccessPolicy"
    assert body["createdDateTime"].endswith("Z")
    assert body["modifiedDateTime"] is None

    # WHEN msgraph-sdk lists the policies
    page = await graph.identity.conditional_access.policies.get()

    # THEN it sees the policy with every condition it was given
    assert page is not None
    [policy] = page.value or []
    assert policy.id == body["id"]
    assert policy.state == ConditionalAccessPolicyState.EnabledForReportingButNotEnforced
    assert policy.conditions is not None
    assert policy.conditions.users is not None
    assert policy.conditions.users.include_groups == [emulator.demo.it_pilot_group_id]
    assert policy.conditions.users.exclude_users == list(emulator.demo.break_glass_ids)
    assert policy.grant_controls is not None
    assert policy.grant_controls.built_in_controls is not None
    assert [c.value for c in policy.grant_controls.built_in_controls] == ["mfa"]


async def test_registration_and_legacy_auth_templates_are_accepted(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    registration = require_mfa(emulator, displayName="Require MFA registration")
    registration["conditions"]["applications"] = {"includeUserActions": ["urn:user:registersecurityinfo"]}
    registration["grantControls"] = {
        "operator": "OR",
        "authenticationStrength": {"id": "00000000-0000-0000-0000-000000000002"},
    }
    legacy = require_mfa(emulator, displayName="Block legacy authentication")
    legacy["conditions"]["users"] = {
        "includeUsers": ["All"],
        "excludeUsers": list(emulator.demo.break_glass_ids),
    }  # type: ignore[union-attr]
    legacy["conditions"]["clientAppTypes"] = ["exchangeActiveSync", "other"]
    legacy["grantControls"] = {"operator": "OR", "builtInControls": ["block"]}

    responses = [await http.post(policies_url(emulator), json=p) for p in (registration, legacy)]

    assert [r.status_code for r in responses] == [201, 201]
    assert (
        responses[0].json()["grantControls"]["authenticationStrength"]["displayName"]
        == "Multifactor authentication"
    )
    filtered = await http.get(
        policies_url(emulator), params={"$filter": "displayName eq 'Block legacy authentication'"}
    )
    assert [p["id"] for p in filtered.json()["value"]] == [responses[1].json()["id"]]


def without(policy: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(policy)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda p: without(p, "displayName"), "displayName"),
        (lambda p: without(p, "conditions"), "conditions"),
        (lambda p: without(p, "conditions", "users"), "conditions.users"),
        (lambda p: without(p, "conditions", "applications"), "conditions.applications"),
        (lambda p: without(p, "grantControls"), "grantControls or sessionControls"),
        (lambda p: {**p, "state": "on"}, "state"),
        (lambda p: {**p, "grantControls": {"operator": "XOR", "builtInControls": ["mfa"]}}, "operator"),
        (
            lambda p: {**p, "grantControls": {"operator": "OR", "builtInControls": ["magic"]}},
            "builtInControls",
        ),
        (lambda p: {**p, "owner": "me"}, "unknown property 'owner'"),
    ],
)
async def test_invalid_policies_get_graphs_1007(
    emulator: EmulatorHandle, http: httpx.AsyncClient, mutate: Any, words: str
) -> None:
    response = await http.post(policies_url(emulator), json=mutate(require_mfa(emulator)))

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "BadRequest"
    assert error["message"].startswith("1007: Incoming ConditionalAccessPolicy object")
    assert words in error["message"]
    assert (await http.get(policies_url(emulator))).json()["value"] == []


async def test_references_to_missing_users_or_groups_are_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    missing = "3f0e4b1e-0000-4000-8000-000000000000"
    bad_group = require_mfa(emulator)
    bad_group["conditions"]["users"]["includeGroups"] = [missing]
    bad_user = require_mfa(emulator)
    bad_user["conditions"]["users"]["excludeUsers"] = [missing]

    responses = [await http.post(policies_url(emulator), json=p) for p in (bad_group, bad_user)]

    assert [r.status_code for r in responses] == [400, 400]
    assert "group '3f0e4b1e" in responses[0].json()["error"]["message"]
    assert "conditions.users.excludeUsers" in responses[1].json()["error"]["message"]


async def test_patch_merges_and_delete_removes(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    created = (await http.post(policies_url(emulator), json=require_mfa(emulator))).json()
    url = f"{policies_url(emulator)}/{created['id']}"

    patched = await http.patch(url, json={"state": "enabled", "conditions": {"clientAppTypes": ["browser"]}})
    bad = await http.patch(url, json={"state": "sometimes"})

    assert (patched.status_code, bad.status_code) == (204, 400)
    after = (await http.get(url)).json()
    assert after["state"] == "enabled"
    assert after["conditions"]["clientAppTypes"] == ["browser"]
    assert after["conditions"]["users"] == created["conditions"]["users"]
    assert after["modifiedDateTime"] is not None
    await graph.identity.conditional_access.policies.by_conditional_access_policy_id(created["id"]).delete()
    with pytest.raises(ODataError) as gone:
        await graph.identity.conditional_access.policies.by_conditional_access_policy_id(created["id"]).get()
    assert gone.value.response_status_code == 404


async def test_the_one_per_second_limit_answers_429_without_retry_after(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # a slowed clock (one emulated second lasts ten real ones), so that however slow the machine is,
    # the second call lands in the first one's window
    emulator.reset(rateLimits={"conditionalAccess": True}, timeScale=0.1)

    first = await http.get(policies_url(emulator))
    second = await http.get(policies_url(emulator))

    assert (first.status_code, second.status_code) == (200, 429)
    assert "Retry-After" not in second.headers
    assert second.json()["error"]["code"] == "TooManyRequests"


async def test_select_projects_and_unknown_options_are_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await http.post(policies_url(emulator), json=require_mfa(emulator))

    selected = await http.get(policies_url(emulator), params={"$select": "id,state"})
    refused = await http.get(policies_url(emulator), params={"$orderby": "displayName"})

    assert [set(p) for p in selected.json()["value"]] == [{"@odata.type", "id", "state"}]
    assert refused.status_code == 400
    assert "$orderby" in refused.json()["error"]["message"]
