"""Graph's notification calls against the real app on the mini-host, with Azurite behind it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from shared.envelope import Envelope
from shared.group_changes.notifications import CHANGE_TYPE
from shared.names import GROUP_CHANGES
from tests.app_host import app_host
from tests.conftest import PLAN_SECRETS
from tests.queue_helpers import fresh_queue

pytestmark = pytest.mark.functional

KEY = "graph-notification-test-key"
STATE = PLAN_SECRETS["WAVEGUARD_GRAPH_CLIENT_STATE"]
GROUP = "1d5c2bd0-4f7c-4a0e-9c4b-6e0f2a1b3c4d"


@pytest.fixture
def api(storage_connection_string: str, app_environ: dict[str, str]) -> Iterator[str]:
    fresh_queue(storage_connection_string, GROUP_CHANGES)
    host = app_host(app_environ, storage_connection_string, function_keys={"default": KEY})
    with host:
        yield f"{host.base_url}/api"


def _notification(state: str) -> dict[str, object]:
    return {
        "value": [
            {
                "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                "clientState": state,
                "changeType": "updated",
                "resource": f"groups/{GROUP}",
                "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
                "resourceData": {"@odata.type": "#Microsoft.Graph.Group", "id": GROUP},
            }
        ]
    }


def test_graph_validates_the_endpoint_and_only_genuine_notifications_reach_the_queue(
    api: str, storage_connection_string: str
) -> None:
    queue = fresh_queue(storage_connection_string, GROUP_CHANGES)
    url = f"{api}/graph/notifications"
    # WHEN Graph validates the subscription endpoint (a token with unicode and reserved characters)
    token = "Validation: ü ☃ & ?=/+%20 #end"
    answer = httpx.post(url, params={"code": KEY, "validationToken": token})
    # THEN it gets the decoded token back as plain text
    assert (answer.status_code, answer.headers["content-type"].split(";")[0], answer.text) == (
        200,
        "text/plain",
        token,
    )
    # AND without the function key nothing is answered
    assert httpx.post(url, params={"validationToken": token}).status_code == 401
    # WHEN a forged notification (wrong clientState) and then a genuine one arrive
    forged = httpx.post(url, params={"code": KEY}, json=_notification("guess"))
    genuine = httpx.post(url, params={"code": KEY}, json=_notification(STATE))
    assert (forged.status_code, genuine.status_code) == (202, 202)
    # THEN only the genuine one is on group-changes
    [message] = queue.peek_messages(max_messages=32)
    envelope = Envelope.from_json(base64.b64decode(message.content))
    assert envelope.type == CHANGE_TYPE
    assert envelope.payload["entries"] == [
        {
            "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
            "resource": f"groups/{GROUP}",
            "changeType": "updated",
        }
    ]
    # AND garbage gets a 400 problem document, never a 5xx
    garbage = httpx.post(
        url, params={"code": KEY}, content=b"\x00{not json", headers={"content-type": "application/json"}
    )
    assert (garbage.status_code, garbage.headers["content-type"]) == (400, "application/problem+json")
    assert json.loads(garbage.text)["errors"][0]["field"] == "body"
    lifecycle = httpx.post(f"{api}/graph/lifecycle", params={"code": KEY}, json={"value": [{"bogus": True}]})
    assert lifecycle.status_code == 400
