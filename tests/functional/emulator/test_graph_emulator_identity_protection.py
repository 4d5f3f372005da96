"""Identity Protection over real HTTP: riskDetections, riskyUsers (confirmCompromised, dismiss),
revokeSignInSessions, the 1 request/s budget that answers 429 without Retry-After, the admin API, and
the sign-in log a risk poller reads since its watermark."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.identity_protection.risky_users.confirm_compromised import (
    confirm_compromised_post_request_body as confirm_body,
)
from msgraph.generated.models.activity_type import ActivityType
from msgraph.generated.models.risk_detail import RiskDetail
from msgraph.generated.models.risk_detection_timing_type import RiskDetectionTimingType
from msgraph.generated.models.risk_level import RiskLevel
from msgraph.generated.models.risk_state import RiskState
from msgraph.generated.models.token_issuer_type import TokenIssuerType

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional

FEMKE = "femke.ritchie@contoso.com"
BREAK_GLASS = "bg-admin1@contoso.onmicrosoft.com"
DETECTION_KEYS = {
    "@odata.type",
    "id",
    "requestId",
    "correlationId",
    "riskEventType",
    "riskState",
    "riskLevel",
    "riskDetail",
    "source",
    "detectionTimingType",
    "activity",
    "tokenIssuerType",
    "ipAddress",
    "location",
    "activityDateTime",
    "detectedDateTime",
    "lastUpdatedDateTime",
    "userId",
    "userDisplayName",
    "userPrincipalName",
    "additionalInfo",
}
RISKY_USER_KEYS = {
    "@odata.type",
    "id",
    "isDeleted",
    "isProcessing",
    "riskLastUpdatedDateTime",
    "riskLevel",
    "riskState",
    "riskDetail",
    "userDisplayName",
    "userPrincipalName",
}


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def detection(
    user: str, level: str = "medium", event: str = "unfamiliarFeatures", **extra: Any
) -> dict[str, Any]:
    return {"userPrincipalName": user, "riskLevel": level, "riskEventType": event, **extra}


@pytest.fixture
async def unthrottled(emulator: EmulatorHandle, http: httpx.AsyncClient) -> EmulatorHandle:
    """The emulator with the Identity Protection budget off, for tests about everything else."""
    response = await http.post(f"{emulator.admin_url}/identity-protection/budget", json={"enabled": False})
    assert response.status_code == 200
    return emulator


async def inject(http: httpx.AsyncClient, emulator: EmulatorHandle, items: Any) -> Any:
    response = await http.post(f"{emulator.admin_url}/risk-detections", json=items)
    assert response.status_code == 201, response.text
    return response.json()


def detections_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/identityProtection/riskDetections"


def risky_users_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/identityProtection/riskyUsers"


async def values(http: httpx.AsyncClient, url: str, **params: str) -> list[dict[str, Any]]:
    response = await http.get(url, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


# --- riskDetections -----------------------------------------------------------------------------


async def test_an_injected_detection_is_read_by_the_sdk_in_graphs_shape(
    unthrottled: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN one detection described by who, how risky and which event
    injected = await inject(
        http, unthrottled, detection(FEMKE, "high", "anonymizedIPAddress", location={"countryOrRegion": "FR"})
    )

    # WHEN msgraph-sdk lists risk detections and the raw body is read too
    page = await graph.identity_protection.risk_detections.get()
    raw = (await http.get(detections_url(unthrottled))).json()

    # THEN every documented property is there, typed as the SDK expects, the rest filled in
    assert page is not None
    [item] = page.value or []
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    assert (item.id, item.user_id, item.user_principal_name) == (injected["id"], femke["id"], FEMKE)
    assert item.user_display_name == femke["displayName"]
    assert (item.risk_level, item.risk_state, item.risk_detail) == (
        RiskLevel.High,
        RiskState.AtRisk,
        RiskDetail.None_,
    )
    assert item.risk_event_type == "anonymizedIPAddress"
    assert (item.activity, item.detection_timing_type) == (
        ActivityType.Signin,
        RiskDetectionTimingType.Realtime,
    )
    assert item.token_issuer_type == TokenIssuerType.AzureAD
    assert item.request_id
    assert item.correlation_id
    assert item.ip_address == "203.0.113.45"
    assert item.location is not None
    assert (item.location.city, item.location.country_or_region) == ("Paris", "FR")
    assert item.detected_date_time is not None
    assert item.detected_date_time.tzinfo is not None
    assert raw["@odata.context"].endswith("/v1.0/$metadata#identityProtection/riskDetections")
    [body] = raw["value"]
    assert set(body) == DETECTION_KEYS
    assert body["@odata.type"] == "#microsoft.graph.riskDetection"
    assert set(body["location"]) == {"city", "state", "countryOrRegion", "geoCoordinates"}
    assert "userAgent" in body["additionalInfo"]


async def test_a_leaked_credentials_detection_is_about_the_user_not_a_sign_in(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    body = await inject(http, unthrottled, detection(FEMKE, "high", "leakedCredentials"))

    assert (body["activity"], body["detectionTimingType"]) == ("user", "offline")
    assert (body["ipAddress"], body["requestId"], body["correlationId"]) == (None, None, None)
    assert body["location"] == {"city": None, "state": None, "countryOrRegion": None, "geoCoordinates": None}


async def test_detections_filter_on_time_level_user_and_state_combined_with_and(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN four detections over three days, two users, three levels, one already remediated
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    await inject(
        http,
        unthrottled,
        [
            detection(FEMKE, "low", detectedDateTime=ago(72)),
            detection(FEMKE, "high", "impossibleTravel", detectedDateTime=ago(30)),
            detection(BREAK_GLASS, "high", "passwordSpray", detectedDateTime=ago(2)),
            detection(FEMKE, "medium", detectedDateTime=ago(1), riskState="remediated"),
        ],
    )
    day = z(datetime.now(UTC) - timedelta(hours=24))
    url = detections_url(unthrottled)

    # WHEN the list is filtered the ways a poller and an investigator do
    recent = await values(http, url, **{"$filter": f"detectedDateTime ge {day}"})
    older = await values(http, url, **{"$filter": f"detectedDateTime lt {day}"})
    high = await values(http, url, **{"$filter": "riskLevel eq 'high'"})
    femke_open = await values(
        http, url, **{"$filter": f"userId eq '{femke['id']}' and riskState eq 'atRisk'"}
    )
    recent_high = await values(http, url, **{"$filter": f"detectedDateTime gt {day} and riskLevel eq 'high'"})
    updated = await values(http, url, **{"$filter": f"lastUpdatedDateTime ge {day}"})
    until = await values(http, url, **{"$filter": f"detectedDateTime le {day}"})

    # THEN each filter keeps exactly its rows, newest first
    assert [d["riskLevel"] for d in recent] == ["medium", "high"]
    assert [d["riskLevel"] for d in older] == ["high", "low"]
    assert {d["riskEventType"] for d in high} == {"impossibleTravel", "passwordSpray"}
    assert [d["riskLevel"] for d in femke_open] == ["high", "low"]
    assert [d["userPrincipalName"] for d in recent_high] == [BREAK_GLASS]
    assert len(updated) == 2
    assert len(until) == 2


async def test_detections_page_with_top_and_next_link_and_order_by_detected_time(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await inject(
        http, unthrottled, [detection(FEMKE, detectedDateTime=ago(hours)) for hours in (5, 1, 3, 2, 4)]
    )
    url = detections_url(unthrottled)

    first = (await http.get(url, params={"$top": "2", "$orderby": "detectedDateTime asc"})).json()
    second = (await http.get(first["@odata.nextLink"])).json()
    third = (await http.get(second["@odata.nextLink"])).json()
    newest_first = await values(http, url)
    descending = await values(http, url, **{"$orderby": "detectedDateTime desc"})

    pages = [first["value"], second["value"], third["value"]]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert "@odata.nextLink" not in third
    stamps = [d["detectedDateTime"] for page in pages for d in page]
    assert stamps == sorted(stamps)
    assert [d["detectedDateTime"] for d in newest_first] == sorted(stamps, reverse=True)
    assert descending == newest_first


async def test_the_default_page_is_20_and_top_is_at_most_500(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await inject(http, unthrottled, [detection(FEMKE, detectedDateTime=ago(i)) for i in range(25)])
    url = detections_url(unthrottled)

    first = (await http.get(url)).json()
    rest = (await http.get(first["@odata.nextLink"])).json()
    too_many = await http.get(url, params={"$top": "501"})

    assert (len(first["value"]), len(rest["value"])) == (20, 5)
    assert too_many.status_code == 400
    assert "500" in too_many.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"$filter": "mood eq 'happy'"}, "Request_UnsupportedQuery"),
        ({"$filter": "riskLevel eq"}, "BadRequest"),
        ({"$orderby": "riskLevel desc"}, "BadRequest"),
        ({"$orderby": "detectedDateTime sideways"}, "BadRequest"),
        ({"$expand": "user"}, "BadRequest"),
        ({"$select": "mood"}, "BadRequest"),
    ],
)
async def test_unsupported_queries_are_graphs_400(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    response = await http.get(detections_url(unthrottled), params=params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_select_and_get_by_id(unthrottled: EmulatorHandle, http: httpx.AsyncClient) -> None:
    injected = await inject(http, unthrottled, detection(FEMKE, "low"))
    url = detections_url(unthrottled)

    selected = (await http.get(url, params={"$select": "id,riskLevel"})).json()
    one = await http.get(f"{url}/{injected['id']}")
    missing = await http.get(f"{url}/not-a-detection")

    assert selected["value"] == [{"id": injected["id"], "riskLevel": "low"}]
    assert selected["@odata.context"].endswith("riskDetections(id,riskLevel)")
    assert one.status_code == 200
    assert one.json()["@odata.context"].endswith("identityProtection/riskDetections/$entity")
    assert {k: v for k, v in one.json().items() if k != "@odata.context"} == {
        "@odata.type": "#microsoft.graph.riskDetection",
        **injected,
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


# --- riskyUsers ---------------------------------------------------------------------------------


async def test_a_users_risk_is_the_highest_of_their_open_detections(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN Femke with a low then a high detection, the break-glass account with a remediated one
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    before = datetime.now(UTC) - timedelta(seconds=1)
    await inject(http, unthrottled, detection(FEMKE, "low"))
    await inject(http, unthrottled, detection(FEMKE, "high", "maliciousIPAddress"))
    await inject(http, unthrottled, detection(BREAK_GLASS, "medium", riskState="remediated"))
    url = risky_users_url(unthrottled)

    # WHEN risky users are listed, filtered and read one by one
    everyone = await values(http, url)
    at_risk = await values(http, url, **{"$filter": "riskState eq 'atRisk'"})
    high = await values(http, url, **{"$filter": "riskLevel eq 'high'"})
    changed = await values(http, url, **{"$filter": f"riskLastUpdatedDateTime ge {z(before)}"})
    future = await values(
        http, url, **{"$filter": f"riskLastUpdatedDateTime gt {z(datetime.now(UTC) + timedelta(hours=1))}"}
    )
    one = await http.get(f"{url}/{femke['id']}")
    nobody = await http.get(f"{url}/00000000-0000-0000-0000-000000000000")

    # THEN Femke is at high risk, the break-glass account remediated, both in Graph's shape
    assert {u["userPrincipalName"]: (u["riskState"], u["riskLevel"]) for u in everyone} == {
        FEMKE: ("atRisk", "high"),
        BREAK_GLASS: ("remediated", "none"),
    }
    assert all(set(u) == RISKY_USER_KEYS for u in everyone)
    assert [u["id"] for u in at_risk] == [u["id"] for u in high] == [femke["id"]]
    assert len(changed) == 2
    assert future == []
    assert one.status_code == 200
    assert (one.json()["id"], one.json()["isDeleted"], one.json()["isProcessing"]) == (
        femke["id"],
        False,
        False,
    )
    assert one.json()["userDisplayName"] == femke["displayName"]
    assert nobody.status_code == 404


async def test_confirm_compromised_through_the_sdk(
    unthrottled: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN Femke at low risk and the CEO with no risk at all
    assert unthrottled.demo is not None
    ceo = unthrottled.demo.ceo_id
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    await inject(http, unthrottled, detection(FEMKE, "low"))
    before = (await http.get(f"{risky_users_url(unthrottled)}/{femke['id']}")).json()
    await asyncio.sleep(0.01)

    # WHEN WaveGuard confirms both compromised through msgraph-sdk
    body = confirm_body.ConfirmCompromisedPostRequestBody(user_ids=[femke["id"], ceo])
    await graph.identity_protection.risky_users.confirm_compromised.post(body)

    # THEN both are confirmedCompromised at high risk, later than before, with Graph's admin detection
    users = {u["id"]: u for u in await values(http, risky_users_url(unthrottled))}
    for user_id in (femke["id"], ceo):
        assert (users[user_id]["riskState"], users[user_id]["riskLevel"], users[user_id]["riskDetail"]) == (
            "confirmedCompromised",
            "high",
            "adminConfirmedUserCompromised",
        )
    assert users[femke["id"]]["riskLastUpdatedDateTime"] > before["riskLastUpdatedDateTime"]
    admin_made = await values(
        http, detections_url(unthrottled), **{"$filter": "riskEventType eq 'adminConfirmedUserCompromised'"}
    )
    assert {d["userId"] for d in admin_made} == {femke["id"], ceo}
    assert {(d["activity"], d["riskState"], d["riskLevel"]) for d in admin_made} == {
        ("user", "confirmedCompromised", "high")
    }


async def test_dismiss_clears_the_risk_and_the_open_detections(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN Femke with two open detections and an old remediated one
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    await inject(
        http,
        unthrottled,
        [
            detection(FEMKE, "high", detectedDateTime=ago(3)),
            detection(FEMKE, "medium", detectedDateTime=ago(2)),
            detection(FEMKE, "low", detectedDateTime=ago(48), riskState="remediated"),
        ],
    )
    before = datetime.now(UTC) - timedelta(seconds=1)

    # WHEN her risk is dismissed (twice: the second changes nothing but the time)
    url = f"{risky_users_url(unthrottled)}/dismiss"
    first = await http.post(url, json={"userIds": [femke["id"]]})
    second = await http.post(url, json={"userIds": [femke["id"]]})

    # THEN 204s; the user is dismissed at level none; the open detections are dismissed and updated now
    assert (first.status_code, second.status_code) == (204, 204)
    assert first.content == b""
    user = (await http.get(f"{risky_users_url(unthrottled)}/{femke['id']}")).json()
    assert (user["riskState"], user["riskLevel"], user["riskDetail"]) == (
        "dismissed",
        "none",
        "adminDismissedAllRiskForUser",
    )
    touched = await values(
        http, detections_url(unthrottled), **{"$filter": f"lastUpdatedDateTime gt {z(before)}"}
    )
    assert sorted(d["riskLevel"] for d in touched) == ["high", "medium"]
    assert {(d["riskState"], d["riskDetail"]) for d in touched} == {
        ("dismissed", "adminDismissedAllRiskForUser")
    }
    remediated = await values(http, detections_url(unthrottled), **{"$filter": "riskState eq 'remediated'"})
    assert len(remediated) == 1


async def test_a_new_detection_after_a_dismissal_puts_the_user_back_at_risk(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    await inject(http, unthrottled, detection(FEMKE, "high"))
    await http.post(f"{risky_users_url(unthrottled)}/dismiss", json={"userIds": [femke["id"]]})

    await inject(http, unthrottled, detection(FEMKE, "low"))

    user = (await http.get(f"{risky_users_url(unthrottled)}/{femke['id']}")).json()
    assert (user["riskState"], user["riskLevel"], user["riskDetail"]) == ("atRisk", "low", "none")


@pytest.mark.parametrize("action", ["confirmCompromised", "dismiss"])
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "userIds"),
        ({"userIds": []}, "userIds"),
        ({"userIds": "abc"}, "userIds"),
        ({"userIds": [42]}, "userIds[0]"),
        ({"userIds": ["x"], "reason": "because"}, "'reason'"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_bad_action_bodies_are_graphs_400(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient, action: str, body: Any, words: str
) -> None:
    response = await http.post(f"{risky_users_url(unthrottled)}/{action}", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert words in error["message"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


@pytest.mark.parametrize("action", ["confirmCompromised", "dismiss"])
async def test_an_unknown_user_id_is_a_404_and_changes_nobody(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient, action: str
) -> None:
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    await inject(http, unthrottled, detection(FEMKE, "medium"))
    ghost = "11111111-2222-3333-4444-555555555555"

    response = await http.post(
        f"{risky_users_url(unthrottled)}/{action}", json={"userIds": [femke["id"], ghost]}
    )
    not_json = await http.post(
        f"{risky_users_url(unthrottled)}/{action}", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"
    assert ghost in response.json()["error"]["message"]
    assert not_json.status_code == 400
    user = (await http.get(f"{risky_users_url(unthrottled)}/{femke['id']}")).json()
    assert (user["riskState"], user["riskLevel"]) == ("atRisk", "medium")


# --- revokeSignInSessions -----------------------------------------------------------------------


async def test_revoke_sign_in_sessions_answers_true_and_is_recorded(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    femke = emulator.store.find_user(FEMKE)
    assert femke is not None

    # WHEN sessions are revoked through the SDK (by id) and raw HTTP (by UPN), and for nobody
    answer = await graph.users.by_user_id(femke["id"]).revoke_sign_in_sessions.post()
    raw = await http.post(f"{emulator.base_url}/users/{BREAK_GLASS}/revokeSignInSessions")
    ghost = await http.post(f"{emulator.base_url}/users/ghost@contoso.com/revokeSignInSessions")

    # THEN Graph's Edm.Boolean answer, a 404 for the unknown user, and both revocations recorded
    assert answer is not None
    assert answer.value is True
    assert raw.status_code == 200
    assert raw.json() == {"@odata.context": f"{emulator.base_url}/$metadata#Edm.Boolean", "value": True}
    assert ghost.status_code == 404
    assert ghost.json()["error"]["code"] == "Request_ResourceNotFound"
    recorded = (await http.get(f"{emulator.admin_url}/revocations")).json()
    assert recorded["count"] == 2
    assert [r["userPrincipalName"] for r in recorded["value"]] == [FEMKE, BREAK_GLASS]
    assert set(recorded["value"][0]) == {"userId", "userPrincipalName", "revokedDateTime", "requestId"}
    assert recorded["value"][1]["requestId"] == raw.headers["request-id"]
    only_femke = (await http.get(f"{emulator.admin_url}/revocations", params={"userId": FEMKE})).json()
    assert [r["userId"] for r in only_femke["value"]] == [femke["id"]]
    assert (await http.delete(f"{emulator.admin_url}/revocations")).status_code == 204
    assert (await http.get(f"{emulator.admin_url}/revocations")).json()["count"] == 0


# --- the Identity Protection budget -------------------------------------------------------------


async def test_the_default_budget_answers_429_without_retry_after_once_its_burst_is_spent(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN the emulator as it starts: the budget on, 2 requests of burst, 1 per second
    state = (await http.get(f"{emulator.admin_url}/state")).json()
    assert state["identityProtectionBudget"]["enabled"] is True
    assert (
        state["identityProtectionBudget"]["capacity"],
        state["identityProtectionBudget"]["refillPerSecond"],
    ) == (
        2,
        1.0,
    )

    # WHEN three Identity Protection requests go out at once
    responses = [await http.get(detections_url(emulator)) for _ in range(3)]

    # THEN the third is Graph's 429 TooManyRequests, and no Retry-After tells the client how long to wait
    assert [r.status_code for r in responses] == [200, 200, 429]
    refused = responses[2]
    assert "Retry-After" not in refused.headers
    error = refused.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


async def test_reads_and_writes_share_the_budget_and_it_refills(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a budget of one request refilled 4 times a second
    emulator.reset(identityProtectionBudget={"capacity": 1, "refillPerSecond": 4})
    femke = emulator.store.find_user(FEMKE)
    assert femke is not None
    body = {"userIds": [femke["id"]]}

    # WHEN a read spends the token, a write follows at once, then another after a pause
    read = await http.get(risky_users_url(emulator))
    write = await http.post(f"{risky_users_url(emulator)}/dismiss", json=body)
    await asyncio.sleep(0.35)
    later = await http.post(f"{risky_users_url(emulator)}/dismiss", json=body)
    # users/revokeSignInSessions and the admin API are outside the budget
    outside = [
        await http.post(f"{emulator.base_url}/users/{femke['id']}/revokeSignInSessions"),
        await http.get(f"{emulator.admin_url}/risk-detections"),
    ]

    # THEN the write was refused until the bucket refilled
    assert (read.status_code, write.status_code, later.status_code) == (200, 429, 204)
    assert "Retry-After" not in write.headers
    assert [r.status_code for r in outside] == [200, 200]


async def test_the_budget_follows_the_time_scale(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    # GIVEN one request a second, in an emulator running 4 times faster
    emulator.reset(timeScale=4, identityProtectionBudget={"capacity": 1})

    first, second = [await http.get(risky_users_url(emulator)) for _ in range(2)]
    await asyncio.sleep(0.35)
    third = await http.get(risky_users_url(emulator))

    assert (first.status_code, second.status_code, third.status_code) == (200, 429, 200)


async def test_the_budget_can_be_turned_off_and_on(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    emulator.reset(identityProtectionBudget=False)
    off = [(await http.get(detections_url(emulator))).status_code for _ in range(6)]

    on = await http.post(
        f"{emulator.admin_url}/identity-protection/budget", json={"capacity": 1, "refillPerSecond": 0.5}
    )
    after = [(await http.get(detections_url(emulator))).status_code for _ in range(2)]
    state = (await http.get(f"{emulator.admin_url}/identity-protection")).json()

    assert off == [200] * 6
    assert on.status_code == 200
    assert on.json() == {"enabled": True, "capacity": 1, "refillPerSecond": 0.5, "available": 1.0}
    assert after == [200, 429]
    assert state["budget"]["available"] < 1
    refilled = (await http.post(f"{emulator.admin_url}/identity-protection/reset")).json()
    assert refilled["budget"]["available"] == 1.0


@pytest.mark.parametrize(
    ("budget", "words"),
    [
        ({"capacity": 0}, "identityProtectionBudget.capacity"),
        ({"refillPerSecond": -1}, "identityProtectionBudget.refillPerSecond"),
        ({"enabled": "yes"}, "identityProtectionBudget.enabled"),
        ({"burst": 3}, "unknown fields: burst"),
        ("fast", "identityProtectionBudget must be"),
    ],
)
async def test_a_bad_budget_is_refused_naming_the_field(
    emulator: EmulatorHandle, http: httpx.AsyncClient, budget: Any, words: str
) -> None:
    reset = await http.post(f"{emulator.admin_url}/reset", json={"identityProtectionBudget": budget})
    live = await http.post(f"{emulator.admin_url}/identity-protection/budget", json=budget)

    assert (reset.status_code, live.status_code) == (400, 400)
    assert words in reset.json()["error"]["message"]
    assert words in live.json()["error"]["message"]


# --- admin API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"riskLevel": "high", "riskEventType": "leakedCredentials"}, "riskDetections[0].userId"),
        (detection("ghost@contoso.com"), "riskDetections[0].userId"),
        ({"userPrincipalName": FEMKE, "riskEventType": "leakedCredentials"}, "riskDetections[0].riskLevel"),
        (detection(FEMKE, "extreme"), "riskLevel: must be one of high, low, medium"),
        ({"userPrincipalName": FEMKE, "riskLevel": "low"}, "riskDetections[0].riskEventType"),
        (detection(FEMKE, event="gremlins"), "riskEventType: must be one of"),
        (detection(FEMKE, riskState="worried"), "riskDetections[0].riskState"),
        (detection(FEMKE, detectedDateTime="yesterday"), "riskDetections[0].detectedDateTime"),
        (detection(FEMKE, ipAddress=7), "riskDetections[0].ipAddress"),
        (detection(FEMKE, location="Paris"), "riskDetections[0].location"),
        (detection(FEMKE, location={"town": "Paris"}), "location has unknown fields: town"),
        (detection(FEMKE, location={"geoCoordinates": {"latitude": "north"}}), "geoCoordinates.latitude"),
        (detection(FEMKE, mood="grumpy"), "unknown fields: mood"),
        ("just text", "riskDetections[0] must be an object"),
    ],
)
async def test_bad_injections_name_the_field_and_add_nothing(
    emulator: EmulatorHandle, http: httpx.AsyncClient, item: Any, words: str
) -> None:
    response = await http.post(f"{emulator.admin_url}/risk-detections", json=[detection(BREAK_GLASS), item])
    message = response.json()["error"]["message"].replace("riskDetections[1]", "riskDetections[0]")

    assert response.status_code == 400
    assert words in message
    state = (await http.get(f"{emulator.admin_url}/identity-protection")).json()
    assert (state["riskDetections"], state["riskyUsers"]) == (0, 0)


async def test_a_duplicate_detection_id_is_refused(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await inject(http, emulator, detection(FEMKE, id="det-1"))

    again = await http.post(f"{emulator.admin_url}/risk-detections", json=detection(BREAK_GLASS, id="det-1"))

    assert again.status_code == 400
    assert "det-1" in again.json()["error"]["message"]
    assert (await http.get(f"{emulator.admin_url}/risk-detections")).json()["count"] == 1


async def test_admin_lists_clears_and_resets_identity_protection(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    admin = emulator.admin_url
    await inject(http, emulator, [detection(FEMKE), detection(BREAK_GLASS, "high")])
    await http.post(f"{emulator.base_url}/users/{FEMKE}/revokeSignInSessions")

    listed = (await http.get(f"{admin}/risk-detections")).json()
    risky = (await http.get(f"{admin}/risky-users")).json()
    counts = (await http.get(f"{admin}/state")).json()["featureCounts"]
    cleared = await http.delete(f"{admin}/risk-detections")
    after_clear = (await http.get(f"{admin}/identity-protection")).json()
    reset = (await http.post(f"{admin}/identity-protection/reset")).json()

    assert (listed["count"], risky["count"]) == (2, 2)
    assert (counts["identityProtection"], counts["sessionRevocations"]) == (2, 1)
    assert cleared.status_code == 204
    assert (after_clear["riskDetections"], after_clear["riskyUsers"], after_clear["revocations"]) == (0, 0, 1)
    assert (reset["riskDetections"], reset["riskyUsers"], reset["revocations"]) == (0, 0, 0)
    assert emulator.store.users  # the directory stays


async def test_a_snapshot_keeps_detections_risky_users_and_revocations(
    unthrottled: EmulatorHandle, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = unthrottled.admin_url
    femke = unthrottled.store.find_user(FEMKE)
    assert femke is not None
    injected = await inject(http, unthrottled, detection(FEMKE, "high"))
    await http.post(f"{unthrottled.base_url}/users/{FEMKE}/revokeSignInSessions")
    snapshot = tmp_path / "tenant.json"
    assert (await http.post(f"{admin}/snapshot", json={"path": str(snapshot)})).status_code == 200

    await http.post(f"{admin}/reset", json={"seed": "empty"})
    assert (await http.get(f"{admin}/identity-protection")).json()["riskDetections"] == 0
    restored = await http.post(
        f"{admin}/reset", json={"snapshot": str(snapshot), "identityProtectionBudget": False}
    )

    assert restored.status_code == 200
    assert restored.json()["featureCounts"]["identityProtection"] == 1
    assert [d["id"] for d in await values(http, detections_url(unthrottled))] == [injected["id"]]
    user = (await http.get(f"{risky_users_url(unthrottled)}/{femke['id']}")).json()
    assert (user["riskState"], user["riskLevel"]) == ("atRisk", "high")
    assert (await http.get(f"{admin}/revocations")).json()["count"] == 1


async def test_detections_inside_a_batch_are_served_and_budgeted_one_by_one(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    emulator.reset(identityProtectionBudget={"capacity": 1, "refillPerSecond": 0.1})
    await inject(http, emulator, detection(FEMKE))
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/identityProtection/riskDetections"},
            {"id": "2", "method": "GET", "url": "/identityProtection/riskyUsers"},
        ]
    }

    answer = (await http.post(f"{emulator.base_url}/$batch", json=batch)).json()

    statuses = {r["id"]: r["status"] for r in answer["responses"]}
    assert statuses == {"1": 200, "2": 429}
    refused = next(r for r in answer["responses"] if r["id"] == "2")
    assert "Retry-After" not in (refused.get("headers") or {})


# --- sign-ins since a watermark -----------------------------------------------------------------


async def test_sign_ins_since_a_watermark_for_one_user_with_client_app_device_and_location(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN Femke's sign-ins before and after the watermark, one over a legacy protocol, and someone else's
    femke = emulator.store.find_user(FEMKE)
    assert femke is not None
    watermark = z(datetime.now(UTC) - timedelta(hours=2))
    injected = await http.post(
        f"{emulator.admin_url}/signins",
        json=[
            {"userPrincipalName": FEMKE, "createdDateTime": ago(3)},
            {
                "userPrincipalName": FEMKE,
                "createdDateTime": ago(1),
                "clientAppUsed": "Exchange ActiveSync",
                "deviceDetail": {"operatingSystem": "iOS 17"},
                "location": {"city": "Lagos", "countryOrRegion": "NG"},
            },
            {"userPrincipalName": FEMKE, "createdDateTime": ago(0.5)},
            {"userPrincipalName": BREAK_GLASS, "createdDateTime": ago(0.5)},
        ],
    )
    assert injected.status_code == 201

    # WHEN the poller reads Femke's sign-ins since the watermark, and the legacy ones
    url = f"{emulator.base_url}/auditLogs/signIns"
    since = await values(
        http, url, **{"$filter": f"createdDateTime ge {watermark} and userId eq '{femke['id']}'"}
    )
    legacy = await values(
        http, url, **{"$filter": f"createdDateTime gt {watermark} and clientAppUsed eq 'Exchange ActiveSync'"}
    )

    # THEN two rows, newest first; a partly given device and location come back with every key
    assert len(since) == 2
    assert since[0]["createdDateTime"] > since[1]["createdDateTime"]
    [row] = legacy
    assert row["deviceDetail"] == {
        "deviceId": "",
        "displayName": "",
        "operatingSystem": "iOS 17",
        "browser": None,
        "isCompliant": False,
        "isManaged": False,
        "trustType": "",
    }
    assert row["location"] == {
        "city": "Lagos",
        "state": None,
        "countryOrRegion": "NG",
        "geoCoordinates": None,
    }
    assert set(since[0]["location"]) == {"city", "state", "countryOrRegion", "geoCoordinates"}
    assert {"deviceId", "operatingSystem", "browser", "isCompliant", "isManaged"} <= set(
        since[0]["deviceDetail"]
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"location": "Lagos"}, "signIns[0].location: must be an object"),
        ({"deviceDetail": {"os": "iOS"}}, "signIns[0].deviceDetail has unknown fields: os"),
    ],
)
async def test_a_malformed_sign_in_device_or_location_is_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient, extra: dict[str, Any], words: str
) -> None:
    response = await http.post(f"{emulator.admin_url}/signins", json=[{"userPrincipalName": FEMKE, **extra}])

    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
