"""Subscriptions on groups: the validation call, Graph's limits, renewal, expiry, change notifications
for every membership change made through the API, and lifecycle notifications on demand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.resources.subscriptions import MAX_GROUP_MINUTES, TENANT_ID
from tests.receiver import Receiver, receiver
from tests.waiting import wait_for

pytestmark = pytest.mark.functional


@pytest.fixture
def endpoint() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def expiry(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pilot_id(emulator: EmulatorHandle) -> str:
    assert emulator.demo is not None
    return emulator.demo.it_pilot_group_id


def some_user(emulator: EmulatorHandle, department: str = "Sales") -> str:
    return next(str(u["id"]) for u in emulator.store.users.values() if u["department"] == department)


def subscribe(
    http: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver, group_id: str, **overrides: Any
) -> httpx.Response:
    body = {
        "changeType": "updated,deleted",
        "notificationUrl": endpoint.url,
        "lifecycleNotificationUrl": endpoint.url.replace("/notifications", "/lifecycle"),
        "resource": f"groups/{group_id}",
        "expirationDateTime": expiry(MAX_GROUP_MINUTES - 1),
        "clientState": "s3cret",
        **overrides,
    }
    return http.post(f"{emulator.base_url}/subscriptions", json=body)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def test_create_validates_both_urls_with_a_url_encoded_token(
    client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver
) -> None:
    response = subscribe(client, emulator, endpoint, pilot_id(emulator))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["resource"] == f"groups/{pilot_id(emulator)}"
    assert body["changeType"] == "updated,deleted"
    assert body["clientState"] == "s3cret"
    assert "?code=k%2By" in body["notificationUrl"]
    # two validation calls (notifications and lifecycle), each with a token that needed decoding
    assert len(endpoint.validations) == 2
    assert all(" " in token and ":" in token for token in endpoint.validations)
    assert any("/api/graph/lifecycle?code=k%2By&validationToken=" in path for path in endpoint.paths)
    listed = client.get(f"{emulator.base_url}/subscriptions").json()["value"]
    assert [item["id"] for item in listed] == [body["id"]]


@pytest.mark.parametrize(
    ("echo", "scale", "fragment"),
    [
        ("wrong", 1, "must exactly match validationToken"),
        ("slow:1.5", 10, "within 10 seconds"),
    ],
)
def test_a_wrong_or_slow_echo_refuses_the_subscription(
    client: httpx.Client,
    emulator: EmulatorHandle,
    endpoint: Receiver,
    echo: str,
    scale: int,
    fragment: str,
) -> None:
    emulator.reset(timeScale=scale)  # 10 s of Graph's patience is 1 s here
    endpoint.echo = echo
    response = subscribe(client, emulator, endpoint, pilot_id(emulator))
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert client.get(f"{emulator.base_url}/subscriptions").json()["value"] == []


def test_an_unreachable_endpoint_refuses_the_subscription(
    client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver
) -> None:
    response = subscribe(
        client, emulator, endpoint, pilot_id(emulator), notificationUrl="http://127.0.0.1:9/api/x"
    )
    assert response.status_code == 400
    assert "Subscription validation request failed" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        # minutes from now, turned into a date when the test runs (not when the module is collected)
        ({"expirationDateTime": MAX_GROUP_MINUTES + 5}, f"{MAX_GROUP_MINUTES} minutes"),
        ({"expirationDateTime": -1}, "in the future"),
        ({"expirationDateTime": "tomorrow"}, "not a valid date"),
        ({"changeType": "updated,exploded"}, "changeType"),
        ({"notificationUrl": "http://example.com/hook"}, "https"),
        ({"resource": "users/abc"}, "groups/{id}"),
        ({"clientState": "x" * 129}, "128"),
        ({"secretSauce": 1}, "Unknown subscription properties"),
    ],
)
def test_graph_limits_are_enforced(
    client: httpx.Client,
    emulator: EmulatorHandle,
    endpoint: Receiver,
    overrides: dict[str, Any],
    fragment: str,
) -> None:
    overrides = {
        k: expiry(v) if isinstance(v, int) and k == "expirationDateTime" else v for k, v in overrides.items()
    }
    response = subscribe(client, emulator, endpoint, pilot_id(emulator), **overrides)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_a_missing_group_is_404(client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver) -> None:
    response = subscribe(client, emulator, endpoint, "00000000-0000-0000-0000-000000000404")
    assert response.status_code == 404


def test_renew_delete_and_expiry(client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver) -> None:
    sub = subscribe(client, emulator, endpoint, pilot_id(emulator), expirationDateTime=expiry(0.03)).json()
    url = f"{emulator.base_url}/subscriptions/{sub['id']}"
    renewed = client.patch(url, json={"expirationDateTime": expiry(60)})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > sub["expirationDateTime"]
    assert client.patch(url, json={"resource": "groups/x"}).status_code == 400
    assert client.post(f"{url}/reauthorize").status_code == 204
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    short = subscribe(client, emulator, endpoint, pilot_id(emulator), expirationDateTime=expiry(0.02)).json()
    wait_for(
        "the short subscription to expire",
        lambda: client.get(f"{emulator.base_url}/subscriptions/{short['id']}").status_code == 404,
        timeout=5,
    )
    assert (
        client.patch(
            f"{emulator.base_url}/subscriptions/{short['id']}", json={"expirationDateTime": expiry(60)}
        ).status_code
        == 404
    )


def test_every_membership_change_through_the_api_is_notified_once(
    client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver
) -> None:
    group = pilot_id(emulator)
    sub = subscribe(client, emulator, endpoint, group).json()
    user = some_user(emulator)
    members = f"{emulator.base_url}/groups/{group}/members"
    ref = {"@odata.id": f"{emulator.base_url}/directoryObjects/{user}"}
    assert client.post(f"{members}/$ref", json=ref).status_code == 204
    assert client.delete(f"{members}/{user}/$ref").status_code == 204
    wait_for("two notifications", lambda: len(endpoint.notifications()) == 2, timeout=5)
    added, removed = endpoint.notifications()
    assert added["subscriptionId"] == sub["id"]
    assert added["clientState"] == "s3cret"
    assert added["changeType"] == "updated"
    assert added["resource"] == f"Groups/{group}"
    assert added["tenantId"] == TENANT_ID
    assert added["resourceData"]["members@delta"] == [{"id": user}]
    assert removed["resourceData"]["members@delta"] == [{"id": user, "@removed": {"reason": "deleted"}}]
    # a group nobody subscribed to is not notified; neither is a deleted subscription
    assert emulator.demo is not None
    other = emulator.demo.break_glass_group_id
    client.post(f"{emulator.base_url}/groups/{other}/members/$ref", json=ref)
    client.delete(f"{emulator.base_url}/subscriptions/{sub['id']}")
    client.post(f"{members}/$ref", json=ref)
    wait_for(
        "the outbound queue to drain",
        lambda: client.get(f"{emulator.admin_url}/notifications").json()["pending"] == 0,
        timeout=5,
    )
    deliveries = client.get(f"{emulator.admin_url}/notifications").json()
    assert len(endpoint.notifications()) == 2
    assert all("code=" not in d["url"] for d in deliveries["value"])


def test_lifecycle_events_on_demand(
    client: httpx.Client, emulator: EmulatorHandle, endpoint: Receiver
) -> None:
    group = pilot_id(emulator)
    sub = subscribe(client, emulator, endpoint, group).json()
    lifecycle = f"{emulator.admin_url}/subscriptions/{sub['id']}/lifecycle"
    assert client.post(lifecycle, json={"event": "bogus"}).status_code == 400
    assert client.post(lifecycle, json={"event": "reauthorizationRequired"}).status_code == 202
    wait_for("one notification", lambda: len(endpoint.notifications()) == 1, timeout=5)
    note = endpoint.notifications()[0]
    assert note["lifecycleEvent"] == "reauthorizationRequired"
    assert note["clientState"] == "s3cret"
    assert note["subscriptionId"] == sub["id"]
    assert any("/api/graph/lifecycle" in path for path in endpoint.paths[-1:])
    # held until reauthorized: a change now is not notified
    user = some_user(emulator)
    ref = {"@odata.id": f"{emulator.base_url}/directoryObjects/{user}"}
    client.post(f"{emulator.base_url}/groups/{group}/members/$ref", json=ref)
    client.post(f"{emulator.base_url}/subscriptions/{sub['id']}/reauthorize")
    client.delete(f"{emulator.base_url}/groups/{group}/members/{user}/$ref")
    wait_for("two notifications", lambda: len(endpoint.notifications()) == 2, timeout=5)
    assert "@removed" in endpoint.notifications()[1]["resourceData"]["members@delta"][0]
    assert client.post(lifecycle, json={"event": "missed"}).status_code == 202
    assert client.post(lifecycle, json={"event": "subscriptionRemoved"}).status_code == 202
    wait_for("four notifications", lambda: len(endpoint.notifications()) == 4, timeout=5)
    assert endpoint.notifications()[2]["resource"] == f"groups/{group}"
    assert client.get(f"{emulator.base_url}/subscriptions/{sub['id']}").status_code == 404
