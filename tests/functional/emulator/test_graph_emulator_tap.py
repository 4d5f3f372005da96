"""Temporary Access Pass: Graph's create/list/get/delete rules, one TAP per user, the admin view."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.temporary_access_pass_authentication_method import (
    TemporaryAccessPassAuthenticationMethod,
)

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional


def taps_url(emulator: EmulatorHandle, user: str) -> str:
    return f"{emulator.base_url}/users/{user}/authentication/temporaryAccessPassMethods"


async def test_the_sdk_creates_a_tap_and_only_the_create_response_holds_the_pass(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN a demo user
    assert emulator.demo is not None
    user_id = emulator.demo.ceo_id

    # WHEN msgraph-sdk creates a one-time TAP of 8 hours
    created = await graph.users.by_user_id(user_id).authentication.temporary_access_pass_methods.post(
        TemporaryAccessPassAuthenticationMethod(lifetime_in_minutes=480, is_usable_once=True)
    )

    # THEN it is usable now and carries the pass; later reads never show it
    assert created is not None
    assert created.temporary_access_pass
    assert (created.lifetime_in_minutes, created.is_usable_once, created.is_usable) == (480, True, True)
    assert created.method_usability_reason == "EnabledByPolicy"
    listed = (await http.get(taps_url(emulator, user_id))).json()["value"]
    assert [(t["id"], t["temporaryAccessPass"]) for t in listed] == [(created.id, None)]
    one = (await http.get(f"{taps_url(emulator, user_id)}/{created.id}")).json()
    assert one["temporaryAccessPass"] is None
    assert one["isUsable"] is True
    # AND the admin view has its hash, never the pass
    admin = (await http.get(f"{emulator.admin_url}/taps", params={"userId": user_id})).json()
    assert admin["count"] == 1
    [entry] = admin["value"]
    assert entry["activeId"] == created.id
    assert (
        entry["taps"][0]["secretSha256"] == hashlib.sha256(created.temporary_access_pass.encode()).hexdigest()
    )
    assert created.temporary_access_pass not in str(admin)


async def test_a_second_tap_replaces_the_first(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    assert emulator.demo is not None
    user_id = emulator.demo.head_ids["IT"]
    first = (await http.post(taps_url(emulator, user_id), json={"lifetimeInMinutes": 60})).json()

    second = await http.post(taps_url(emulator, user_id), json={"lifetimeInMinutes": 60})

    assert second.status_code == 201
    listed = (await http.get(taps_url(emulator, user_id))).json()["value"]
    assert [t["id"] for t in listed] == [second.json()["id"]]
    assert (await http.get(f"{taps_url(emulator, user_id)}/{first['id']}")).status_code == 404
    [entry] = (await http.get(f"{emulator.admin_url}/taps")).json()["value"]
    assert entry["created"] == 2
    assert [t["deletedReason"] for t in entry["taps"]] == ["replaced", None]


async def test_a_future_start_is_not_yet_valid(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    start = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    response = await http.post(
        taps_url(emulator, "bg-admin1@contoso.onmicrosoft.com"),
        json={"startDateTime": start, "lifetimeInMinutes": 43200, "isUsableOnce": False},
    )

    body = response.json()
    assert response.status_code == 201
    assert body["startDateTime"].startswith(start[:19])
    assert (body["isUsable"], body["methodUsabilityReason"]) == (False, "NotYetValid")


async def test_a_past_window_is_expired(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

    body = (
        await http.post(
            taps_url(emulator, "bg-admin2@contoso.onmicrosoft.com"),
            json={"startDateTime": start, "lifetimeInMinutes": 10},
        )
    ).json()

    assert (body["isUsable"], body["methodUsabilityReason"]) == (False, "Expired")


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"lifetimeInMinutes": 9}, 400, "badRequest", "between 10 and 43200"),
        ({"lifetimeInMinutes": 43201}, 400, "badRequest", "between 10 and 43200"),
        ({"lifetimeInMinutes": "60"}, 400, "BadRequest", "Edm.Int32"),
        ({"isUsableOnce": "yes"}, 400, "BadRequest", "Edm.Boolean"),
        ({"startDateTime": "tomorrow"}, 400, "BadRequest", "Edm.DateTimeOffset"),
        ({"pin": "1234"}, 400, "BadRequest", "'pin' does not exist"),
    ],
)
async def test_invalid_requests_get_graphs_errors(
    emulator: EmulatorHandle,
    http: httpx.AsyncClient,
    body: dict[str, object],
    status: int,
    code: str,
    words: str,
) -> None:
    assert emulator.demo is not None

    response = await http.post(taps_url(emulator, emulator.demo.ceo_id), json=body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert words in response.json()["error"]["message"]
    assert (await http.get(f"{emulator.admin_url}/taps")).json()["count"] == 0


async def test_delete_then_delete_again_is_404_and_unknown_users_are_404(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    user_id = emulator.demo.ceo_id
    created = (await http.post(taps_url(emulator, user_id), json={})).json()
    assert (created["lifetimeInMinutes"], created["isUsableOnce"]) == (60, False)  # policy defaults

    await (
        graph.users.by_user_id(user_id)
        .authentication.temporary_access_pass_methods.by_temporary_access_pass_authentication_method_id(
            created["id"]
        )
        .delete()
    )

    assert (await http.get(taps_url(emulator, user_id))).json()["value"] == []
    assert (await http.delete(f"{taps_url(emulator, user_id)}/{created['id']}")).status_code == 404
    with pytest.raises(ODataError) as missing:
        await graph.users.by_user_id("nobody@contoso.com").authentication.temporary_access_pass_methods.get()
    assert missing.value.response_status_code == 404
    assert (await http.post(taps_url(emulator, "nobody@contoso.com"), json={})).status_code == 404


async def test_creating_a_tap_spends_a_write_token(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    assert emulator.demo is not None
    emulator.reset(writeBudget={"capacity": 1, "perSeconds": 60})

    first = await http.post(taps_url(emulator, emulator.demo.ceo_id), json={})
    second = await http.post(taps_url(emulator, emulator.demo.ceo_id), json={})

    assert (first.status_code, second.status_code) == (201, 429)
    assert second.headers["Retry-After"]
