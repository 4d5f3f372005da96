"""Graph beta: the /beta API version next to /v1.0 and the beta-only per-user MFA state
(``/beta/users/{id}/authentication/requirements``), its permissions, admin API and snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from local.graph_emulator import BREAK_GLASS_UPNS, EmulatorHandle
from local.graph_emulator.resources.registration import is_mfa_registered

pytestmark = pytest.mark.functional

JSON = {"Content-Type": "application/json"}
UNKNOWN_USER = "00000000-0000-0000-0000-0000000000aa"


def requirements_url(emulator: EmulatorHandle, user: str, *, version: str = "beta") -> str:
    return f"{emulator.origin}/{version}/users/{user}/authentication/requirements"


async def state_of(http: httpx.AsyncClient, emulator: EmulatorHandle, user: str) -> str:
    response = await http.get(requirements_url(emulator, user))
    assert response.status_code == 200, response.text
    return str(response.json()["perUserMfaState"])


def registered(emulator: EmulatorHandle, *, mfa: bool) -> str:
    """A Sales person who has (or has not) an MFA method registered and no per-user MFA state."""
    assert emulator.demo is not None
    for user in emulator.store.users.values():
        uid = str(user["id"])
        if (
            user.get("department") == "Sales"
            and uid not in emulator.demo.per_user_mfa
            and is_mfa_registered(emulator.store, uid) == mfa
        ):
            return uid
    raise AssertionError("the demo has no such Sales person")


async def logged(http: httpx.AsyncClient, emulator: EmulatorHandle) -> list[tuple[str, str, int]]:
    entries = (await http.get(f"{emulator.admin_url}/requests")).json()["value"]
    return [(e["method"], e["path"], e["status"]) for e in entries]


# --- the /beta API version ---------------------------------------------------------------------


async def test_beta_serves_every_v1_route_with_a_beta_context_and_logs_the_beta_path(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id

    v1 = await http.get(f"{emulator.base_url}/users/{ceo}")
    beta = await http.get(f"{emulator.beta_url}/users/{ceo}")

    assert (v1.status_code, beta.status_code) == (200, 200)
    assert v1.json()["@odata.context"] == f"{emulator.origin}/v1.0/$metadata#users/$entity"
    assert beta.json()["@odata.context"] == f"{emulator.origin}/beta/$metadata#users/$entity"
    assert {k: v for k, v in beta.json().items() if k != "@odata.context"} == {
        k: v for k, v in v1.json().items() if k != "@odata.context"
    }
    assert await logged(http, emulator) == [
        ("GET", f"/v1.0/users/{ceo}", 200),
        ("GET", f"/beta/users/{ceo}", 200),
    ]


async def test_v1_answers_a_beta_only_route_as_an_unknown_segment(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    url = requirements_url(emulator, emulator.demo.ceo_id, version="v1.0")

    got = await http.get(url)
    patched = await http.patch(url, json={"perUserMfaState": "enforced"})

    for response in (got, patched):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BadRequest"
        assert response.json()["error"]["message"] == "Resource not found for the segment 'requirements'."
    assert await state_of(http, emulator, emulator.demo.ceo_id) == "disabled"  # the PATCH changed nothing


async def test_an_unknown_api_version_is_still_a_404_naming_both_versions(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{emulator.origin}/v2.0/users")

    assert response.status_code == 404
    assert "use /v1.0 or /beta" in response.json()["error"]["message"]


async def test_a_beta_batch_runs_its_items_under_beta_and_a_v1_batch_under_v1(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id
    items: list[dict[str, Any]] = [
        {"id": "1", "method": "GET", "url": f"/users/{ceo}/authentication/requirements"},
        {
            "id": "2",
            "method": "PATCH",
            "url": f"/users/{ceo}/authentication/requirements",
            "headers": JSON,
            "body": {"perUserMfaState": "enforced"},
            "dependsOn": ["1"],
        },
        {"id": "3", "method": "GET", "url": f"/users/{ceo}?$select=id", "dependsOn": ["2"]},
    ]

    beta = await http.post(f"{emulator.beta_url}/$batch", json={"requests": items})
    v1 = await http.post(f"{emulator.base_url}/$batch", json={"requests": items[:1]})
    log = [(m, p) for m, p, _ in await logged(http, emulator)]

    assert beta.status_code == 200
    answers = {a["id"]: a for a in beta.json()["responses"]}
    assert [answers[i]["status"] for i in ("1", "2", "3")] == [200, 204, 200]
    assert answers["1"]["body"]["perUserMfaState"] == "disabled"
    assert answers["1"]["body"]["@odata.context"].startswith(f"{emulator.origin}/beta/$metadata#users(")
    assert answers["3"]["body"]["@odata.context"] == f"{emulator.origin}/beta/$metadata#users(id)/$entity"
    assert await state_of(http, emulator, ceo) == "enforced"
    assert v1.json()["responses"][0]["status"] == 400  # the beta-only route, under /v1.0
    # each item is logged under /beta, then the batch itself; the v1.0 batch's item under /v1.0
    assert log == [
        ("GET", f"/beta/users/{ceo}/authentication/requirements"),
        ("PATCH", f"/beta/users/{ceo}/authentication/requirements"),
        ("GET", f"/beta/users/{ceo}"),
        ("POST", "/beta/$batch"),
        ("GET", f"/v1.0/users/{ceo}/authentication/requirements"),
        ("POST", "/v1.0/$batch"),
    ]


async def test_beta_writes_spend_the_same_write_budget_and_take_the_same_faults(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    emulator.reset(writeBudget={"capacity": 1, "perSeconds": 3600})
    url = requirements_url(emulator, registered(emulator, mfa=False))

    first = await http.patch(url, json={"perUserMfaState": "enabled"})
    second = await http.patch(url, json={"perUserMfaState": "disabled"})
    await http.post(
        f"{emulator.admin_url}/faults", json={"status": 503, "path": "^/beta/users/.*/requirements$"}
    )
    faulted = await http.get(url)
    after = await http.get(url)

    assert first.status_code == 204
    assert second.status_code == 429
    assert "Retry-After" in second.headers
    assert faulted.status_code == 503
    assert after.json()["perUserMfaState"] == "enabled"
    entries = (await http.get(f"{emulator.admin_url}/requests", params={"path": "^/beta/"})).json()["value"]
    assert [(e["status"], e["injectedFault"]) for e in entries] == [
        (204, False),
        (429, False),
        (503, True),
        (200, False),
    ]


# --- GET and PATCH /beta/users/{id}/authentication/requirements ---------------------------------


async def test_get_answers_graphs_shape_and_disabled_for_a_user_never_set(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id

    response = await http.get(requirements_url(emulator, ceo))

    assert response.status_code == 200
    context = f"{emulator.origin}/beta/$metadata#users('{ceo}')/authentication/requirements/$entity"
    assert response.json() == {"@odata.context": context, "perUserMfaState": "disabled"}


async def test_get_by_upn_reads_the_users_state(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    assert emulator.demo is not None
    user_id, state = next(iter(emulator.demo.per_user_mfa.items()))
    upn = emulator.store.users[user_id]["userPrincipalName"]

    response = await http.get(requirements_url(emulator, upn))

    assert response.json()["perUserMfaState"] == state
    assert response.json()["@odata.context"].endswith(
        f"users('{upn.replace('@', '%40')}')/authentication/requirements/$entity"
    )


async def test_patch_sets_each_state_and_answers_204(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    user = registered(emulator, mfa=False)
    url = requirements_url(emulator, user)

    seen = []
    for state in ("enabled", "enforced", "disabled"):
        response = await http.patch(url, json={"perUserMfaState": state})
        assert response.status_code == 204
        assert response.content == b""
        seen.append(await state_of(http, emulator, user))

    assert seen == ["enabled", "enforced", "disabled"]


async def test_enabling_a_user_who_registered_mfa_enforces_them(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN one person with an MFA method registered and one who registered e-mail (SSPR) only
    with_mfa = registered(emulator, mfa=True)
    without = registered(emulator, mfa=False)
    await http.delete(f"{emulator.admin_url}/users/{without}/methods")
    await http.post(f"{emulator.admin_url}/users/{without}/methods", json={"methods": ["email"]})

    # WHEN both are enabled
    for user in (with_mfa, without):
        response = await http.patch(requirements_url(emulator, user), json={"perUserMfaState": "enabled"})
        assert response.status_code == 204

    # THEN the registered one is enforced at once, the other enabled until they register
    assert await state_of(http, emulator, with_mfa) == "enforced"
    assert await state_of(http, emulator, without) == "enabled"
    await http.post(f"{emulator.admin_url}/users/{without}/methods", json={"methods": ["mobilePhone"]})
    await http.patch(requirements_url(emulator, without), json={"perUserMfaState": "enabled"})
    assert await state_of(http, emulator, without) == "enforced"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"perUserMfaState": "on"}, '"on"'),
        ({"perUserMfaState": "Enforced"}, '"Enforced"'),
        ({"perUserMfaState": "unknownFutureValue"}, "unknownFutureValue"),
        ({"perUserMfaState": None}, "null"),
        ({"perUserMfaState": 1}, "1"),
        ({"perUserMfaState": "enabled", "state": "enabled"}, "'state'"),
        ({"state": "enabled"}, "'state'"),
        ({}, "'perUserMfaState' is required"),
    ],
)
async def test_patch_refuses_an_invalid_body_naming_it(
    emulator: EmulatorHandle, http: httpx.AsyncClient, body: dict[str, Any], named: str
) -> None:
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id

    response = await http.patch(requirements_url(emulator, ceo), json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert named in error["message"]
    assert await state_of(http, emulator, ceo) == "disabled"


async def test_patch_refuses_a_body_that_is_not_a_json_object(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    url = requirements_url(emulator, emulator.demo.ceo_id)

    listed = await http.patch(url, json=["enabled"])
    garbage = await http.patch(url, content=b"enabled", headers=JSON)

    assert (listed.status_code, garbage.status_code) == (400, 400)


async def test_an_unknown_user_is_graphs_404(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    url = requirements_url(emulator, UNKNOWN_USER)

    got = await http.get(url)
    patched = await http.patch(url, json={"perUserMfaState": "enabled"})

    for response in (got, patched):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "Request_ResourceNotFound"
        assert UNKNOWN_USER in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("granted", "get_status", "patch_status"),
    [
        (["User.Read.All", "Directory.Read.All"], 403, 403),
        (["Policy.Read.All"], 200, 403),
        (["Policy.ReadWrite.AuthenticationMethod"], 200, 204),
        (["Policy.ReadWrite.ConditionalAccess"], 403, 403),
    ],
)
async def test_the_app_needs_a_policy_permission(
    emulator: EmulatorHandle, granted: list[str], get_status: int, patch_status: int
) -> None:
    assert emulator.demo is not None
    emulator.reset(permissions=granted)
    url = requirements_url(emulator, emulator.demo.ceo_id)

    async with httpx.AsyncClient(timeout=10) as app:  # the app: no tenant-admin header
        got = await app.get(url)
        patched = await app.patch(url, json={"perUserMfaState": "enabled"})

    assert (got.status_code, patched.status_code) == (get_status, patch_status)
    for response in (got, patched):
        if response.status_code == 403:
            assert response.json()["error"]["code"] == "Authorization_RequestDenied"


# --- the demo tenant, the admin API and snapshots -------------------------------------------------


async def test_the_demo_starts_some_it_pilot_and_finance_people_on_per_user_mfa(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    chosen = emulator.demo.per_user_mfa

    listed = (await http.get(f"{emulator.admin_url}/per-user-mfa")).json()

    assert sorted(chosen.values()).count("enforced") == 6
    assert sorted(chosen.values()).count("enabled") == 4
    departments = {emulator.store.users[uid]["department"] for uid in chosen}
    assert departments == {"IT", "Finance"}
    break_glass = {
        u["id"] for u in emulator.store.users.values() if u["userPrincipalName"] in BREAK_GLASS_UPNS
    }
    assert not break_glass & set(chosen)
    assert listed["count"] == 10
    assert {e["id"]: e["state"] for e in listed["value"]} == chosen
    first = listed["value"][0]
    assert first == {
        "id": first["id"],
        "userPrincipalName": emulator.store.users[first["id"]]["userPrincipalName"],
        "state": chosen[first["id"]],
    }
    for user_id, state in chosen.items():
        assert await state_of(http, emulator, user_id) == state


async def test_admin_put_sets_a_state_exactly_and_the_list_follows(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    user = registered(emulator, mfa=True)
    upn = emulator.store.users[user]["userPrincipalName"]
    enforced_one = next(uid for uid, s in emulator.demo.per_user_mfa.items() if s == "enforced")

    put = await http.put(f"{emulator.admin_url}/users/{upn}/per-user-mfa", json={"state": "enabled"})
    cleared = await http.put(
        f"{emulator.admin_url}/users/{enforced_one}/per-user-mfa", json={"state": "disabled"}
    )
    listed = (await http.get(f"{emulator.admin_url}/per-user-mfa")).json()

    assert put.status_code == 200
    assert put.json() == {"id": user, "userPrincipalName": upn, "state": "enabled"}
    assert cleared.json()["state"] == "disabled"
    assert await state_of(http, emulator, user) == "enabled"  # no promotion through the admin API
    assert await state_of(http, emulator, enforced_one) == "disabled"
    assert listed["count"] == 10
    states = {e["id"]: e["state"] for e in listed["value"]}
    assert states[user] == "enabled"
    assert enforced_one not in states
    assert (await http.get(f"{emulator.admin_url}/state")).json()["featureCounts"]["perUserMfa"] == 10


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        (UNKNOWN_USER, {"state": "enabled"}, 404),
        (None, {"state": "on"}, 400),
        (None, {"state": "enabled", "extra": 1}, 400),
        (None, {}, 400),
    ],
)
async def test_admin_put_refuses_an_unknown_user_or_a_bad_body(
    emulator: EmulatorHandle, http: httpx.AsyncClient, user: str | None, body: dict[str, Any], status: int
) -> None:
    assert emulator.demo is not None
    target = user or emulator.demo.ceo_id

    response = await http.put(f"{emulator.admin_url}/users/{target}/per-user-mfa", json=body)

    assert response.status_code == status


async def test_a_snapshot_keeps_the_per_user_mfa_states(
    emulator: EmulatorHandle, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id
    await http.patch(requirements_url(emulator, ceo), json={"perUserMfaState": "enforced"})
    expected = (await http.get(f"{emulator.admin_url}/per-user-mfa")).json()
    snapshot = tmp_path / "tenant.json"
    assert (
        await http.post(f"{emulator.admin_url}/snapshot", json={"path": str(snapshot)})
    ).status_code == 200

    emptied = (await http.post(f"{emulator.admin_url}/reset", json={"seed": "empty"})).json()
    restored = await http.post(f"{emulator.admin_url}/reset", json={"snapshot": str(snapshot)})

    assert "perUserMfa" not in emptied["featureCounts"]
    assert restored.json()["featureCounts"]["perUserMfa"] == 11
    assert (await http.get(f"{emulator.admin_url}/per-user-mfa")).json() == expected
    assert await state_of(http, emulator, ceo) == "enforced"
