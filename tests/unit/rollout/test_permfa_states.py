"""Per-user MFA states read 20 users per beta $batch: every state Graph answers, unknown never guessed."""

from __future__ import annotations

import json
from typing import Any

import httpx

from shared.graph.batch import BatchClient
from shared.rollout.permfa import read_states

USERS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(45)]


class Tenant:
    """A Graph beta $batch endpoint answering from a dict of user id -> item answer."""

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        self.answers = answers
        self.batches: list[list[dict[str, Any]]] = []
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        items = json.loads(request.content)["requests"]
        self.batches.append(items)
        responses = []
        for item in items:
            user_id = item["url"].split("/")[2]
            status, body = self.answers.get(user_id, (200, {"perUserMfaState": "disabled"}))
            responses.append({"id": item["id"], "status": status, "headers": {}, "body": body})
        return httpx.Response(200, json={"responses": responses})


def _client(tenant: Tenant) -> BatchClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(tenant))
    return BatchClient.for_http(http, "http://127.0.0.1:9/beta")


async def test_every_user_is_read_twenty_per_batch_with_progress() -> None:
    tenant = Tenant(
        {USERS[0]: (200, {"perUserMfaState": "enforced"}), USERS[1]: (200, {"perUserMfaState": "enabled"})}
    )
    seen: list[tuple[int, int]] = []
    states = await read_states(_client(tenant), [*USERS, USERS[0]], progress=lambda d, t: seen.append((d, t)))
    assert sorted(len(b) for b in tenant.batches) == [5, 20, 20]
    assert all(item["url"].endswith("/authentication/requirements") for b in tenant.batches for item in b)
    assert states[USERS[0]].state == "enforced"
    assert states[USERS[1]].state == "enabled"
    assert {states[u].state for u in USERS[2:]} == {"disabled"}
    assert seen[-1] == (45, 45)


async def test_an_unreadable_state_is_unknown_with_the_reason() -> None:
    tenant = Tenant(
        {
            USERS[0]: (404, {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}),
            USERS[1]: (403, {"error": {"code": "Authorization_RequestDenied", "message": "no"}}),
            USERS[2]: (200, {"perUserMfaState": "unknownFutureValue"}),
            USERS[3]: (200, "not an object"),
        }
    )
    states = await read_states(_client(tenant), USERS[:4])
    assert {u: states[u].state for u in USERS[:4]} == dict.fromkeys(USERS[:4], "unknown")
    assert states[USERS[0]].error == "Graph answered 404: gone"
    assert states[USERS[1]].error == "Graph answered 403: no"
    assert "unknownFutureValue" in states[USERS[2]].error


async def test_no_users_no_requests() -> None:
    tenant = Tenant({})
    assert await read_states(_client(tenant), []) == {}
    assert tenant.batches == []
