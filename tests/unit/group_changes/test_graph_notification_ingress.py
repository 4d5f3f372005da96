"""Graph change and lifecycle notifications at the ingress: Graph's documented payloads, and worse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import RetryableError
from shared.group_changes.notifications import (
    CHANGE_TYPE,
    LIFECYCLE_TYPE,
    MAX_BODY_BYTES,
    NotificationDeps,
    accept_notifications,
)
from shared.http_ingress import IncomingRequest
from shared.names import GROUP_CHANGES
from shared.queues import MemoryQueues

STATE = "s3cr3t-client-state"
GROUP = "1d5c2bd0-4f7c-4a0e-9c4b-6e0f2a1b3c4d"
JSON = {"content-type": "application/json; charset=utf-8"}


def change(
    group: str = GROUP, *, state: str = STATE, change_type: str = "updated", **extra: Any
) -> dict[str, Any]:
    """One change notification on a group, as Graph documents it (basic, no resource data encryption)."""
    return {
        "id": "lsgTZMr9KwAAA",
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2026-12-30T11:00:00.0000000Z",
        "clientState": state,
        "changeType": change_type,
        "resource": f"groups/{group}",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Group",
            "@odata.id": f"groups/{group}",
            "id": group,
            "organizationId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "members@delta": [{"id": "5c4b1c9a-0000-4000-8000-000000000001"}],
        },
        **extra,
    }


def lifecycle(event: str, *, state: str = STATE) -> dict[str, Any]:
    return {
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2026-12-30T11:00:00.0000000Z",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        "clientState": state,
        "lifecycleEvent": event,
    }


def post(
    body: bytes | dict[str, Any], *, headers: dict[str, str] | None = None, **query: str
) -> IncomingRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return IncomingRequest("POST", headers if headers is not None else JSON, raw, query)


@pytest.fixture
def queues() -> MemoryQueues:
    return MemoryQueues()


@pytest.fixture
def deps(queues: MemoryQueues) -> NotificationDeps:
    return NotificationDeps(queue=queues, client_state=STATE)


@pytest.mark.parametrize("token", ["plain", "Validation: ü ☃ &?=/+%#", "a" * 2000, " spaces around "])
async def test_the_validation_handshake_echoes_the_decoded_token_as_plain_text_and_does_nothing_else(
    deps: NotificationDeps, queues: MemoryQueues, token: str
) -> None:
    # Graph POSTs ?validationToken=<url-encoded> with an empty body and no content type
    for kind in ("change", "lifecycle"):
        result = await accept_notifications(
            post(b"", headers={}, validationToken=token), deps=deps, kind=kind
        )  # type: ignore[arg-type]
        assert (result.status, result.content_type, result.body_text()) == (200, "text/plain", token)
        assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert queues.sent == []


async def test_valid_notifications_are_collapsed_into_one_envelope_on_group_changes(
    deps: NotificationDeps, queues: MemoryQueues
) -> None:
    other = "2e6d3ce1-0000-4000-8000-000000000002"
    batch = {"value": [change(), change(), change(other), change(change_type="deleted")]}
    result = await accept_notifications(post(batch), deps=deps, kind="change")
    assert (result.status, result.body) == (202, {"accepted": 4})
    [envelope] = queues.on(GROUP_CHANGES)
    assert envelope.type == CHANGE_TYPE
    assert sorted((e["resource"], e["changeType"]) for e in envelope.payload["entries"]) == [
        (f"groups/{GROUP}", "deleted"),
        (f"groups/{GROUP}", "updated"),
        (f"groups/{other}", "updated"),
    ]
    # Graph delivering the same batch again enqueues the same envelope id (the worker dedupes)
    await accept_notifications(post(batch), deps=deps, kind="change")
    assert len({e.id for e in queues.on(GROUP_CHANGES)}) == 1


async def test_a_wrong_or_missing_client_state_is_never_enqueued_and_the_answer_says_nothing(
    deps: NotificationDeps, queues: MemoryQueues
) -> None:
    forged = {"value": [change(state="guess"), change(state=STATE[:-1]), {**change(), "clientState": None}]}
    result = await accept_notifications(post(forged), deps=deps, kind="change")
    assert (result.status, result.body) == (202, {"accepted": 0})
    assert queues.sent == []
    # mixed: only the genuine one goes through
    mixed = {"value": [change(state="guess"), change()]}
    assert (await accept_notifications(post(mixed), deps=deps, kind="change")).body == {"accepted": 1}
    [envelope] = queues.on(GROUP_CHANGES)
    assert len(envelope.payload["entries"]) == 1


async def test_without_a_configured_client_state_nothing_is_ever_enqueued(queues: MemoryQueues) -> None:
    deps = NotificationDeps(queue=queues, client_state=None)
    result = await accept_notifications(post({"value": [change()]}), deps=deps, kind="change")
    assert result.status == 202
    assert queues.sent == []


async def test_lifecycle_notifications_are_enqueued_as_lifecycle_events(
    deps: NotificationDeps, queues: MemoryQueues
) -> None:
    batch = {
        "value": [lifecycle("reauthorizationRequired"), lifecycle("missed"), lifecycle("subscriptionRemoved")]
    }
    assert (await accept_notifications(post(batch), deps=deps, kind="lifecycle")).status == 202
    [envelope] = queues.on(GROUP_CHANGES)
    assert envelope.type == LIFECYCLE_TYPE
    assert sorted(e["lifecycleEvent"] for e in envelope.payload["entries"]) == [
        "missed",
        "reauthorizationRequired",
        "subscriptionRemoved",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"\xff\xfe garbage", "body"),
        (b"[" * 100_000, "body"),
        (b'{"value": NaN}', "body"),
        (b"null", "value"),
        (b'{"value": []}', "value"),
        (b'{"value": {}}', "value"),
        (b'{"value": [42]}', "value[0]"),
        (json.dumps({"value": [{**change(), "subscriptionId": 7}]}).encode(), "value[0].subscriptionId"),
        (json.dumps({"value": [{**change(), "resource": ""}]}).encode(), "value[0].resource"),
        (json.dumps({"value": [change(change_type="exploded")]}).encode(), "value[0].changeType"),
        (
            json.dumps({"value": [change(), {**change(), "clientState": ["x"]}]}).encode(),
            "value[1].clientState",
        ),
    ],
)
async def test_malformed_bodies_get_400_problem_json_naming_the_field_and_nothing_is_queued(
    deps: NotificationDeps, queues: MemoryQueues, body: bytes, field: str
) -> None:
    result = await accept_notifications(post(body), deps=deps, kind="change")
    assert (result.status, result.content_type) == (400, "application/problem+json")
    assert result.body["status"] == 400
    assert field in [e["field"] for e in result.body["errors"]]
    assert queues.sent == []


async def test_a_lifecycle_event_graph_does_not_define_is_refused(deps: NotificationDeps) -> None:
    result = await accept_notifications(
        post({"value": [lifecycle("selfDestruct")]}), deps=deps, kind="lifecycle"
    )
    assert result.status == 400
    assert result.body["errors"][0]["field"] == "value[0].lifecycleEvent"


async def test_wrong_content_type_and_oversized_bodies_are_refused_before_parsing(
    deps: NotificationDeps,
) -> None:
    text = await accept_notifications(
        post({"value": [change()]}, headers={"content-type": "text/plain"}), deps=deps, kind="change"
    )
    assert text.status == 415
    huge = await accept_notifications(post(b"{" + b" " * MAX_BODY_BYTES + b"}"), deps=deps, kind="change")
    assert huge.status == 413


async def test_a_queue_that_cannot_take_the_batch_answers_503_so_graph_delivers_again(
    deps: NotificationDeps,
) -> None:
    class Down(MemoryQueues):
        async def send(self, *args: Any, **kwargs: Any) -> str:
            raise RetryableError("storage down")

    result = await accept_notifications(
        post({"value": [change()]}), deps=NotificationDeps(Down(), STATE), kind="change"
    )
    assert (result.status, result.headers["Retry-After"]) == (503, "10")
