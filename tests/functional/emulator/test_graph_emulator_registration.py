"""userRegistrationDetails: derived from registered methods, filtered, paged and limited 5 per 10 s."""

from __future__ import annotations

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.reports.authentication_methods.user_registration_details.user_registration_details_request_builder import (  # noqa: E501
    UserRegistrationDetailsRequestBuilder,
)

from local.graph_emulator import DEMO_USER_COUNT, EmulatorHandle

pytestmark = pytest.mark.functional

Builder = UserRegistrationDetailsRequestBuilder


def report_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/reports/authenticationMethods/userRegistrationDetails"


async def test_registering_a_method_makes_a_user_mfa_registered_for_the_sdk(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN a demo user who has registered nothing
    user_id = next(
        u["id"]
        for u in emulator.store.users.values()
        if u["id"] not in emulator.store.extensions["registration"].by_user  # type: ignore[attr-defined]
    )
    query = Builder.UserRegistrationDetailsRequestBuilderGetQueryParameters(filter=f"id eq '{user_id}'")
    config = Builder.UserRegistrationDetailsRequestBuilderGetRequestConfiguration(query_parameters=query)
    before = await graph.reports.authentication_methods.user_registration_details.get(
        request_configuration=config
    )
    assert before is not None
    assert [(d.is_mfa_registered, d.methods_registered) for d in before.value or []] == [(False, [])]

    # WHEN they register the Authenticator app
    added = await http.post(
        f"{emulator.admin_url}/users/{user_id}/methods", json={"methods": ["microsoftAuthenticatorPush"]}
    )
    assert added.status_code == 201

    # THEN the report shows them MFA-registered and capable, with push as their second factor
    after = await graph.reports.authentication_methods.user_registration_details.get(
        request_configuration=config
    )
    assert after is not None
    [row] = after.value or []
    assert (row.is_mfa_registered, row.is_mfa_capable, row.is_passwordless_capable) == (True, True, False)
    assert row.methods_registered == ["microsoftAuthenticatorPush"]
    assert row.user_principal_name == emulator.store.users[user_id]["userPrincipalName"]


async def test_email_alone_is_sspr_not_mfa_and_fido2_is_passwordless(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    ceo, head = emulator.demo.ceo_id, emulator.demo.head_ids["HR"]
    await http.delete(f"{emulator.admin_url}/users/{ceo}/methods")
    await http.delete(f"{emulator.admin_url}/users/{head}/methods")
    await http.post(f"{emulator.admin_url}/users/{ceo}/methods", json={"methods": ["email"]})
    await http.post(f"{emulator.admin_url}/users/{head}/methods", json={"methods": ["fido2"]})

    rows = (await http.get(report_url(emulator), params={"$filter": f"id in ('{ceo}', '{head}')"})).json()[
        "value"
    ]

    by_id = {r["id"]: r for r in rows}
    assert (by_id[ceo]["isSsprRegistered"], by_id[ceo]["isMfaRegistered"]) == (True, False)
    assert (by_id[head]["isMfaRegistered"], by_id[head]["isPasswordlessCapable"]) == (True, True)
    assert by_id[ceo]["@odata.type"] == "#microsoft.graph.userRegistrationDetails"


async def test_the_demo_has_a_deterministic_share_registered_and_the_report_pages(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN the demo tenant; WHEN the report is read page by page (4 pages of 100: inside the limit)
    rows: list[dict[str, object]] = []
    url: str | None = report_url(emulator)
    while url:
        page = (await http.get(url)).json()
        rows.extend(page["value"])
        url = page.get("@odata.nextLink")

    # THEN every user appears once, most of IT is registered, fewer elsewhere
    assert len(rows) == len({r["id"] for r in rows}) == DEMO_USER_COUNT
    departments = {u["id"]: u.get("department") for u in emulator.store.users.values()}
    it = [r for r in rows if departments[str(r["id"])] == "IT"]
    others = [r for r in rows if departments[str(r["id"])] not in ("IT", None)]
    it_share = sum(bool(r["isMfaRegistered"]) for r in it) / len(it)
    other_share = sum(bool(r["isMfaRegistered"]) for r in others) / len(others)
    assert it_share > 0.5 > other_share > 0.1
    registered = (
        await http.get(report_url(emulator), params={"$filter": "isMfaRegistered eq true", "$top": "999"})
    ).json()
    assert len(registered["value"]) == sum(bool(r["isMfaRegistered"]) for r in rows)


async def test_a_sixth_request_within_ten_seconds_gets_429_with_retry_after(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    statuses = [(await http.get(report_url(emulator), params={"$top": "1"})) for _ in range(6)]

    assert [r.status_code for r in statuses] == [200] * 5 + [429]
    assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 10


@pytest.mark.parametrize(
    ("url_suffix", "body", "words"),
    [
        ("nobody@contoso.com/methods", {"methods": ["fido2"]}, "no user"),
        ("bg-admin1@contoso.onmicrosoft.com/methods", {"methods": ["carrierPigeon"]}, "unknown method"),
        ("bg-admin1@contoso.onmicrosoft.com/methods", {"methods": "fido2"}, "list"),
    ],
)
async def test_bad_method_registrations_are_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient, url_suffix: str, body: dict[str, object], words: str
) -> None:
    response = await http.post(f"{emulator.admin_url}/users/{url_suffix}", json=body)

    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
