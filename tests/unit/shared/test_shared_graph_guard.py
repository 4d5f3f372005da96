"""The break-glass guard inside the Graph client, on raw requests: what it refuses is never sent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.config import BreakGlass, load_settings
from shared.errors import SafetyViolationError
from shared.graph import build_graph_client, guard_of

BASE = "http://127.0.0.1:9/v1.0"
EXCLUSION = "0b5e5b1e-0000-4000-8000-00000000e0e0"
BG1, BG2 = "0b5e5b1e-0000-4000-8000-0000000000b1", "0b5e5b1e-0000-4000-8000-0000000000b2"
WAVE = "0b5e5b1e-0000-4000-8000-00000000aaaa"
ADA = "0b5e5b1e-0000-4000-8000-00000000ada0"
BOTH = [BG1, BG2.upper()]
BOTH_EXCLUDED = {"includeUsers": ["All"], "excludeGroups": [EXCLUSION], "excludeUsers": [BG1, BG2]}
BREAK_GLASS = BreakGlass.model_validate(
    {"accounts": [{"id": BG1}, {"userPrincipalName": "bg2@contoso.com"}], "exclusionGroup": {"id": EXCLUSION}}
)


class Tenant:
    def __init__(self, live_policy: dict[str, Any] | None = None, *, users: bool = True) -> None:
        self.sent: list[tuple[str, str]] = []
        self.live_policy = live_policy or {}
        self.users = users

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.startswith("/v1.0/users/"):
            return (
                httpx.Response(200, json={"id": BG2 if "bg2@" in path.lower() else ADA})
                if self.users
                else httpx.Response(
                    404, json={"error": {"code": "Request_ResourceNotFound", "message": "not found"}}
                )
            )
        if request.method == "GET":
            return httpx.Response(200, json=self.live_policy)
        self.sent.append((request.method, path))
        return httpx.Response(204)


def _client(tenant: Tenant) -> Any:
    http = httpx.AsyncClient(transport=httpx.MockTransport(tenant))
    return build_graph_client(
        load_settings({"GRAPH_BASE_URL": BASE}), http_client=http, max_retries=0, break_glass=BREAK_GLASS
    )


async def _send(client: Any, method: str, path: str, body: Any = None) -> None:
    adapter = client.request_adapter
    await adapter._http_client.request(method, f"{BASE}{path}", json=body)


def _ref(member: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member}"}


REFUSED = [
    ("POST", f"/groups/{WAVE}/members/$ref", _ref(BG1)),
    ("POST", f"/groups/{WAVE}/members/$ref", _ref(BG2.upper())),
    ("POST", f"/groups/{WAVE}/members/%24ref", _ref(BG2)),
    ("POST", f"/groups/{WAVE}/members/$ref", _ref(EXCLUSION)),
    ("POST", f"/groups/{EXCLUSION}/members/$ref", _ref(ADA)),
    ("POST", f"/groups/{WAVE}/members/$ref", {"@odata.id": ""}),
    ("PATCH", f"/groups/{WAVE}", {"members@odata.bind": [_ref(ADA)["@odata.id"], _ref(BG1)["@odata.id"]]}),
    ("DELETE", f"/groups/{EXCLUSION}/members/{BG1}/$ref", None),
    ("DELETE", f"/groups/{EXCLUSION.upper()}/members/{ADA}/$ref", None),
    ("DELETE", f"/groups/{EXCLUSION}", None),
    (
        "DELETE",
        f"/groups/{EXCLUSION}/members/$ref?$id=https://graph.microsoft.com/v1.0/directoryObjects/{BG1}",
        None,
    ),
    ("PATCH", f"/groups/{WAVE}", {"Members@odata.bind": [_ref(BG1)["@odata.id"]]}),
    ("POST", "/groups", {"displayName": "sneaky", "members@odata.bind": [_ref(BG2)["@odata.id"]]}),
    ("POST", "/groups", {"displayName": "nest", "members@odata.bind": [_ref(EXCLUSION)["@odata.id"]]}),
    (
        "POST",
        "/$batch",
        {
            "requests": [
                {
                    "id": "1",
                    "method": "PATCH",
                    "url": f"/groups/{WAVE}",
                    "body": {"members@odata.bind": [_ref(ADA)["@odata.id"]]},
                },
                {"id": "2", "method": "DELETE", "url": f"/groups/{EXCLUSION}/members/{BG2}/$ref"},
            ]
        },
    ),
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {"displayName": "x", "conditions": {"users": {"includeUsers": ["All"]}}},
    ),
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {"displayName": "x", "conditions": {"users": {"excludeUsers": [BG1]}}},
    ),
    ("PATCH", "/identity/conditionalAccess/policies/p1", {"conditions": {"applications": {}}}),
    # the promise is both: the exclusion group AND every break-glass account
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {
            "displayName": "x",
            "conditions": {"users": {"includeUsers": ["All"], "excludeGroups": [EXCLUSION]}},
        },
    ),
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {"displayName": "x", "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": [BG1, BG2]}}},
    ),
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {
            "displayName": "x",
            "conditions": {
                "users": {"includeUsers": ["All"], "excludeGroups": [EXCLUSION], "excludeUsers": [BG1]}
            },
        },
    ),
    (
        "PATCH",
        "/identity/conditionalAccess/policies/p1",
        {"conditions": {"users": {"includeUsers": ["All"], "excludeGroups": [EXCLUSION]}}},
    ),
    ("PUT", "/identity/conditionalAccess/policies/p1", {"displayName": "x", "conditions": None}),
    ("PATCH", "/identity/conditionalAccess/policies/p1", {"conditions": None, "state": "enabled"}),
    (
        "POST",
        "/$batch",
        {
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": "/identity/conditionalAccess/policies",
                    "body": {"displayName": "x", "conditions": {"users": {"excludeGroups": [EXCLUSION]}}},
                }
            ]
        },
    ),
    (
        "POST",
        "/$batch",
        {
            "requests": [
                {
                    "id": "1",
                    "method": "PATCH",
                    "url": "/identity/conditionalAccess/policies/p1",
                    "body": {"state": "enabled"},
                }
            ]
        },
    ),
    ("PATCH", "/identity/conditionalAccess/policies/p1", {"state": "enabled"}),
    # the break-glass accounts themselves and their authentication
    ("POST", f"/users/{BG1}/authentication/temporaryAccessPassMethods", {"lifetimeInMinutes": 60}),
    ("PATCH", f"/users/{BG1.upper()}", {"accountEnabled": False}),
    ("DELETE", f"/users/{BG1}", None),
    ("PATCH", "/users/BG2@contoso.com/authentication/requirements", {"perUserMfaState": "disabled"}),
    ("DELETE", f"/users/{BG1}/authentication/microsoftAuthenticatorMethods/m1", None),
    (
        "POST",
        "/$batch",
        {
            "requests": [
                {"id": "1", "method": "PATCH", "url": f"/users/{BG1}", "body": {"accountEnabled": False}}
            ]
        },
    ),
]

ALLOWED = [
    ("POST", f"/groups/{WAVE}/members/$ref", _ref(ADA)),
    ("POST", f"/groups/{EXCLUSION}/members/$ref", _ref(BG2)),
    ("PATCH", f"/groups/{WAVE}", {"members@odata.bind": [_ref(ADA)["@odata.id"]]}),
    ("PATCH", f"/groups/{WAVE}", {"displayName": "WaveGuard - Wave 2 renamed"}),
    ("DELETE", f"/groups/{WAVE}/members/{BG1}/$ref", None),
    ("DELETE", f"/groups/{WAVE}", None),
    ("POST", "/groups", {"displayName": "WaveGuard - Wave 5", "securityEnabled": True, "mailEnabled": False}),
    (
        "POST",
        "/identity/conditionalAccess/policies",
        {
            "displayName": "x",
            "conditions": {
                "users": {"includeUsers": ["All"], "excludeGroups": [EXCLUSION.upper()], "excludeUsers": BOTH}
            },
        },
    ),
    ("PATCH", "/identity/conditionalAccess/policies/p1", {"conditions": {"users": BOTH_EXCLUDED}}),
    ("PATCH", "/identity/conditionalAccess/policies/p1", {"state": "enabledForReportingButNotEnforced"}),
    ("DELETE", "/identity/conditionalAccess/policies/p1", None),
    ("POST", "/users/x/authentication/temporaryAccessPassMethods", {"lifetimeInMinutes": 60}),
    ("POST", f"/users/{ADA}/authentication/temporaryAccessPassMethods", {"lifetimeInMinutes": 60}),
    ("PATCH", "/users/ada@contoso.com/authentication/requirements", {"perUserMfaState": "disabled"}),
    ("POST", f"/users/{BG1}/revokeSignInSessions", None),
    ("POST", f"/users/{BG1}/sendMail", {"message": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), REFUSED)
async def test_a_write_that_could_lock_break_glass_out_is_refused_and_never_sent(
    method: str, path: str, body: Any
) -> None:
    tenant = Tenant({"conditions": {"users": {"includeUsers": ["All"]}}})
    client = _client(tenant)
    with pytest.raises(SafetyViolationError, match="break-glass"):
        await _send(client, method, path, body)
    assert tenant.sent == []
    assert guard_of(client).refused == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "path", "body"), ALLOWED)
async def test_ordinary_writes_pass(method: str, path: str, body: Any) -> None:
    tenant = Tenant()
    client = _client(tenant)
    await _send(client, method, path, body)
    assert len(tenant.sent) == 1


async def test_enabling_a_policy_that_already_excludes_break_glass_passes() -> None:
    tenant = Tenant({"conditions": {"users": BOTH_EXCLUDED}})
    await _send(_client(tenant), "PATCH", "/identity/conditionalAccess/policies/p1", {"state": "enabled"})
    assert tenant.sent == [("PATCH", "/v1.0/identity/conditionalAccess/policies/p1")]


@pytest.mark.parametrize(
    "live_users",
    [
        {"includeUsers": ["All"]},
        {"includeUsers": ["All"], "excludeGroups": [EXCLUSION]},
        {"includeUsers": ["All"], "excludeUsers": [BG1, BG2]},
    ],
)
@pytest.mark.parametrize("batched", [False, True])
async def test_a_patch_without_conditions_is_refused_when_it_leaves_an_unexcluding_policy_enabled(
    live_users: dict[str, Any], batched: bool
) -> None:
    # GIVEN an enabled live policy that lacks half (or all) of the break-glass exclusion
    tenant = Tenant({"state": "enabled", "conditions": {"users": live_users}})
    client = _client(tenant)
    patch = {"grantControls": {"operator": "OR", "builtInControls": ["block"]}}
    path = "/identity/conditionalAccess/policies/p1"
    # WHEN a PATCH that touches neither conditions nor state is sent, alone or in a $batch
    method, url, body = ("PATCH", path, dict[str, Any](patch))
    if batched:
        method, url, body = (
            "POST",
            "/$batch",
            {"requests": [{"id": "1", "method": "PATCH", "url": path, "body": patch}]},
        )
    with pytest.raises(SafetyViolationError, match="break-glass"):
        await _send(client, method, url, body)
    # THEN it is refused: the policy would stay enabled without both exclusions
    assert tenant.sent == []


@pytest.mark.parametrize(
    ("live", "patch"),
    [
        ({"state": "enabled", "conditions": {"users": BOTH_EXCLUDED}}, {"grantControls": {"operator": "OR"}}),
        ({"state": "enabledForReportingButNotEnforced", "conditions": {"users": {}}}, {"grantControls": {}}),
        ({"state": "enabled", "conditions": {"users": {}}}, {"state": "disabled"}),
    ],
)
async def test_a_patch_without_conditions_passes_when_the_result_is_not_enabled_or_excludes_both(
    live: dict[str, Any], patch: dict[str, Any]
) -> None:
    tenant = Tenant(live)
    await _send(_client(tenant), "PATCH", "/identity/conditionalAccess/policies/p1", patch)
    assert tenant.sent == [("PATCH", "/v1.0/identity/conditionalAccess/policies/p1")]


async def test_an_unresolvable_break_glass_set_up_refuses_every_guarded_write() -> None:
    # GIVEN a break-glass UPN the tenant does not know: the guard cannot tell who to protect
    tenant = Tenant(users=False)
    client = _client(tenant)
    with pytest.raises(SafetyViolationError, match=r"bg2@contoso\.com not found"):
        await _send(client, "POST", f"/groups/{WAVE}/members/$ref", _ref(ADA))
    assert tenant.sent == []
    # reads still work
    await client.request_adapter._http_client.get(f"{BASE}/groups/{WAVE}")


def test_the_guard_sees_the_body_it_checks() -> None:
    # The bodies above are the JSON Graph receives (no re-encoding between check and send).
    assert json.loads(json.dumps(REFUSED[0][2])) == REFUSED[0][2]
