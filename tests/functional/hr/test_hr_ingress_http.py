"""POST /api/hr/events via the real mini-host and Azurite: accepted once, or refused with nothing queued."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hr_ingress_helpers import (
    HIRE,
    body_of,
    empty_hr_events,
    queued_envelopes,
    running_app,
    signed_headers,
)

from local.graph_emulator import EmulatorHandle
from shared.hr.ingress import MAX_BODY_BYTES, event_envelope_id
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional

SECRET = PLAN_SECRETS["WAVEGUARD_HR_WEBHOOK_SECRET"]
OTHER_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


@pytest.fixture(scope="module")
def api(storage_connection_string: str, emulator_server: EmulatorHandle) -> Iterator[str]:
    environ = {
        "AzureWebJobsStorage": storage_connection_string,
        "GRAPH_BASE_URL": emulator_server.base_url,
        "WAVEGUARD_CONFIG": "config/waveguard.yaml",
        **PLAN_SECRETS,
    }
    with running_app(environ, storage_connection_string) as url:
        yield url


@pytest.fixture
def client(api: str, storage_connection_string: str) -> Iterator[httpx.Client]:
    empty_hr_events(storage_connection_string)
    with httpx.Client(base_url=api, timeout=30) as http:
        yield http


def _msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def test_signed_hire_is_accepted_and_queued_for_the_worker(
    client: httpx.Client, storage_connection_string: str
) -> None:
    # GIVEN a hire signed by the official Standard Webhooks client
    msg_id = _msg_id()
    body = body_of(HIRE)
    # WHEN it is posted
    response = client.post("/hr/events", content=body, headers=signed_headers(SECRET, body, msg_id=msg_id))
    # THEN 202 with the event id, and exactly that envelope is on hr-events
    assert response.status_code == 202, response.text
    event_id = event_envelope_id("standard-webhooks", msg_id)
    assert response.json() == {"id": event_id}
    [envelope] = queued_envelopes(storage_connection_string)
    assert envelope.id == event_id
    assert envelope.type == "employee.hired"
    assert envelope.payload == HIRE


def test_the_same_webhook_three_times_is_the_same_envelope_three_times(
    client: httpx.Client, storage_connection_string: str
) -> None:
    # the door keeps no state (one queue send per request); the worker applies the id once
    msg_id = _msg_id()
    body = body_of(HIRE)
    headers = signed_headers(SECRET, body, msg_id=msg_id)
    responses = [client.post("/hr/events", content=body, headers=headers) for _ in range(3)]
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert [e.id for e in queued_envelopes(storage_connection_string)] == [responses[0].json()["id"]] * 3


def test_a_retry_signed_anew_is_still_the_same_event(
    client: httpx.Client, storage_connection_string: str
) -> None:
    # Senders re-sign each attempt with a fresh timestamp but keep the webhook-id.
    msg_id = _msg_id()
    body = body_of(HIRE)
    first = client.post("/hr/events", content=body, headers=signed_headers(SECRET, body, msg_id=msg_id))
    later = datetime.now(UTC) + timedelta(seconds=30)
    again = client.post(
        "/hr/events", content=body, headers=signed_headers(SECRET, body, msg_id=msg_id, at=later)
    )
    assert first.json() == again.json()
    assert {e.id for e in queued_envelopes(storage_connection_string)} == {first.json()["id"]}


def _refusal(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, object] = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    return problem


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("tampered body", 401),
        ("wrong secret", 401),
        ("stale timestamp", 401),
        ("future timestamp", 401),
        ("missing webhook-id", 401),
        ("missing webhook-timestamp", 401),
        ("missing webhook-signature", 401),
        ("wrong content type", 415),
        ("oversized body", 413),
        ("non-JSON body", 400),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_queued(
    client: httpx.Client, storage_connection_string: str, case: str, status: int
) -> None:
    msg_id = _msg_id()
    body = body_of(HIRE)
    headers = signed_headers(SECRET, body, msg_id=msg_id)
    now = datetime.now(UTC)
    if case == "tampered body":
        body = body.replace(b"Finance", b"Sales")
    elif case == "wrong secret":
        headers = signed_headers(OTHER_SECRET, body, msg_id=msg_id)
    elif case == "stale timestamp":
        headers = signed_headers(SECRET, body, msg_id=msg_id, at=now - timedelta(minutes=6))
    elif case == "future timestamp":
        headers = signed_headers(SECRET, body, msg_id=msg_id, at=now + timedelta(minutes=6))
    elif case.startswith("missing "):
        del headers[case.removeprefix("missing ")]
    elif case == "wrong content type":
        headers["content-type"] = "text/plain"
    elif case == "oversized body":
        body = body_of({**HIRE, "padding": "x" * MAX_BODY_BYTES})
        headers = signed_headers(SECRET, body, msg_id=msg_id)
    elif case == "non-JSON body":
        body = b"type=employee.hired&employeeId=E1001"
        headers = signed_headers(SECRET, body, msg_id=msg_id)
    response = client.post("/hr/events", content=body, headers=headers)
    _refusal(response, status)
    assert queued_envelopes(storage_connection_string) == []


def test_schema_errors_are_400_naming_every_field(
    client: httpx.Client, storage_connection_string: str
) -> None:
    event = {**HIRE, "type": "employee.promoted", "data": {**HIRE["data"], "country": "Britain"}}
    body = body_of(event)
    response = client.post("/hr/events", content=body, headers=signed_headers(SECRET, body, msg_id=_msg_id()))
    problem = _refusal(response, 400)
    assert sorted(e["field"] for e in problem["errors"]) == ["data.country", "type"]  # type: ignore[attr-defined]
    assert queued_envelopes(storage_connection_string) == []


def test_a_refused_webhook_id_can_still_be_accepted_when_fixed(
    client: httpx.Client, storage_connection_string: str
) -> None:
    # A 400 must not burn the webhook-id: the sender fixes the payload and resends it.
    msg_id = _msg_id()
    bad = body_of({**HIRE, "type": "employee.promoted"})
    assert (
        client.post("/hr/events", content=bad, headers=signed_headers(SECRET, bad, msg_id=msg_id)).status_code
        == 400
    )
    good = body_of(HIRE)
    assert (
        client.post(
            "/hr/events", content=good, headers=signed_headers(SECRET, good, msg_id=msg_id)
        ).status_code
        == 202
    )
    assert len(queued_envelopes(storage_connection_string)) == 1
