"""The ingress decision table with in-memory fakes: status, problem JSON, and what is enqueued."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from shared.config import BambooHr, HrProviders
from shared.config.plan import StandardWebhooks
from shared.envelope import Envelope
from shared.errors import RetryableError
from shared.hr.bamboohr import sign_bamboohr
from shared.hr.ingress import (
    MAX_BODY_BYTES,
    IncomingRequest,
    IngressDeps,
    accept_bamboohr_webhook,
    accept_hr_webhook,
    event_envelope_id,
)
from shared.hr.signatures import decode_whsec, sign_standard_webhook
from shared.names import HR_EVENTS
from tests.aio import aio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAMBOO_KEY = "bamboo-private-key-for-tests"
HIRE = {
    "type": "employee.hired",
    "timestamp": "2026-12-01T08:00:00Z",
    "data": {"employeeId": "E1001", "userPrincipalName": "ada@contoso.com", "department": "Finance"},
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []
        self.failures = 0

    def send(self, queue_name: str, envelope: Envelope) -> str:
        if self.failures:
            self.failures -= 1
            raise RetryableError("storage down")
        self.sent.append((queue_name, envelope))
        return f"m{len(self.sent)}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def deps(clock: Clock, queue: FakeQueue) -> IngressDeps:
    providers = HrProviders(
        standard_webhooks=StandardWebhooks(enabled=True, secrets=[SecretStr(SECRET)]),
        bamboohr=BambooHr(enabled=True, secret=SecretStr(BAMBOO_KEY)),
    )
    return IngressDeps(providers=providers, queue=aio(queue), clock=clock)


def _signed(body: bytes, *, msg_id: str = "msg_1", at: datetime, secret: str = SECRET) -> IncomingRequest:
    headers = {
        "Content-Type": "application/json",
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at.timestamp())),
        "Webhook-Signature": _sign(secret, msg_id, at, body),
    }
    return IncomingRequest(method="POST", headers=headers, body=body)


def _sign(secret: str, msg_id: str, at: datetime, body: bytes) -> str:
    try:
        return Webhook(secret).sign(msg_id, at, body.decode())
    except UnicodeDecodeError:  # the official client signs text only; bytes need our signer
        return sign_standard_webhook(decode_whsec(secret), msg_id, int(at.timestamp()), body)


def _body(obj: Any = HIRE) -> bytes:
    return json.dumps(obj).encode()


def test_valid_hire_is_queued_once_with_the_canonical_payload(
    deps: IngressDeps, queue: FakeQueue, clock: Clock
) -> None:
    result = asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now), deps=deps))
    expected_id = event_envelope_id("standard-webhooks", "msg_1")
    assert (result.status, result.body) == (202, {"id": expected_id})
    [(name, envelope)] = queue.sent
    assert name == HR_EVENTS
    assert envelope.id == expected_id
    assert envelope.type == "employee.hired"
    assert envelope.payload == HIRE


def test_same_webhook_three_times_is_the_same_envelope_each_costing_one_send(
    deps: IngressDeps, queue: FakeQueue, clock: Clock
) -> None:
    # the door keeps no state: each delivery is one queue send, and the worker applies an envelope
    # id once (tests/unit/onboarding: a redelivered hire, update or termination is a duplicate)
    results = [asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now), deps=deps)) for _ in range(3)]
    assert [r.status for r in results] == [202, 202, 202]
    assert len({r.body["id"] for r in results}) == 1
    assert len(queue.sent) == 3
    assert len({envelope.id for _, envelope in queue.sent}) == 1


def test_failed_enqueue_answers_503_and_the_retry_succeeds(
    deps: IngressDeps, queue: FakeQueue, clock: Clock
) -> None:
    queue.failures = 1
    first = asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now), deps=deps))
    assert first.status == 503
    assert first.headers["Retry-After"]
    assert queue.sent == []
    second = asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now), deps=deps))
    assert second.status == 202
    assert len(queue.sent) == 1


def _problem(result: Any) -> dict[str, Any]:
    assert result.content_type == "application/problem+json"
    assert result.body["status"] == result.status
    return dict(result.body)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("", 415),
        ("application/json; charset=latin-1", 415),
        ("application/x-www-form-urlencoded", 415),
    ],
)
def test_wrong_content_type_is_415(
    deps: IngressDeps, queue: FakeQueue, clock: Clock, content_type: str, status: int
) -> None:
    request = _signed(_body(), at=clock.now)
    request = IncomingRequest("POST", {**request.headers, "content-type": content_type}, request.body)
    result = asyncio.run(accept_hr_webhook(request, deps=deps))
    assert result.status == status
    assert "application/json" in _problem(result)["detail"]
    assert queue.sent == []


def test_json_with_charset_is_accepted(deps: IngressDeps, queue: FakeQueue, clock: Clock) -> None:
    request = _signed(_body(), at=clock.now)
    request = IncomingRequest(
        "POST", {**request.headers, "content-type": "Application/JSON; charset=UTF-8"}, request.body
    )
    assert asyncio.run(accept_hr_webhook(request, deps=deps)).status == 202


def test_oversized_body_is_413(deps: IngressDeps, queue: FakeQueue, clock: Clock) -> None:
    big = dict(HIRE, padding="x" * MAX_BODY_BYTES)
    result = asyncio.run(accept_hr_webhook(_signed(_body(big), at=clock.now), deps=deps))
    assert result.status == 413
    _problem(result)
    assert queue.sent == []


def test_bad_signature_is_401_and_names_no_secret(deps: IngressDeps, queue: FakeQueue, clock: Clock) -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    result = asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now, secret=other), deps=deps))
    assert result.status == 401
    assert SECRET[6:] not in result.body_text()
    assert queue.sent == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b"{not json", ["body"]),
        (b"\xff\xfe", ["body"]),
        (b"[1, 2]", ["body"]),
        (b'{"type": "employee.hired", "timestamp": NaN, "data": {}}', ["body"]),
        (_body({**HIRE, "type": "employee.promoted"}), ["type"]),
        (
            _body({**HIRE, "data": {"employeeId": "E1", "country": "Britain", "hireDate": "soon"}}),
            ["data.country", "data.hireDate"],
        ),
    ],
)
def test_malformed_or_invalid_events_are_400_naming_fields(
    deps: IngressDeps, queue: FakeQueue, clock: Clock, body: bytes, fields: list[str]
) -> None:
    result = asyncio.run(accept_hr_webhook(_signed(body, at=clock.now), deps=deps))
    assert result.status == 400
    assert sorted(e["field"] for e in _problem(result)["errors"]) == fields
    assert queue.sent == []


def test_disabled_provider_is_404(deps: IngressDeps, queue: FakeQueue, clock: Clock) -> None:
    disabled = IngressDeps(providers=HrProviders(), queue=deps.queue, clock=clock)
    assert asyncio.run(accept_hr_webhook(_signed(_body(), at=clock.now), deps=disabled)).status == 404
    assert asyncio.run(accept_bamboohr_webhook(_signed(_body(), at=clock.now), deps=disabled)).status == 404
    assert queue.sent == []


def _bamboo(body: bytes, timestamp: str = "2026-12-01T08:00:00+0000") -> IncomingRequest:
    headers = {
        "Content-Type": "application/json",
        "X-BambooHR-Timestamp": timestamp,
        "X-BambooHR-Signature": sign_bamboohr(BAMBOO_KEY, timestamp, body),
    }
    return IncomingRequest("POST", headers, body)


BAMBOO = {
    "employees": [
        {
            "id": "1",
            "action": "Created",
            "timestamp": "2026-12-01T07:59:00+0000",
            "fields": {"Work Email": "ada@contoso.com"},
        },
        {
            "id": "2",
            "action": "Created",
            "timestamp": "2026-12-01T07:59:00+0000",
            "fields": {"Work Email": "alan@contoso.com"},
        },
    ]
}


def test_bamboohr_delivery_queues_one_event_per_employee_under_stable_ids(
    deps: IngressDeps, queue: FakeQueue
) -> None:
    first = asyncio.run(accept_bamboohr_webhook(_bamboo(_body(BAMBOO)), deps=deps))
    again = asyncio.run(accept_bamboohr_webhook(_bamboo(_body(BAMBOO)), deps=deps))
    assert first.status == again.status == 202
    assert first.body == again.body
    assert len(first.body["ids"]) == 2
    assert [e.payload["data"]["userPrincipalName"] for _, e in queue.sent] == [
        "ada@contoso.com",
        "alan@contoso.com",
    ] * 2  # the redelivery is sent again under the same ids: the worker applies each once
    assert [e.id for _, e in queue.sent] == first.body["ids"] * 2


def test_bamboohr_partial_failure_is_503_and_the_retry_sends_it_whole(
    deps: IngressDeps, queue: FakeQueue
) -> None:
    class SecondFails(FakeQueue):
        """The delivery's second send fails, once."""

        failed = False

        def send(self, queue_name: str, envelope: Envelope) -> str:
            if len(self.sent) == 1 and not self.failed:
                self.failed = True
                raise RetryableError("storage down")
            return super().send(queue_name, envelope)

    flaky = SecondFails()
    flaky_deps = IngressDeps(providers=deps.providers, queue=aio(flaky), clock=deps.clock)
    assert asyncio.run(accept_bamboohr_webhook(_bamboo(_body(BAMBOO)), deps=flaky_deps)).status == 503
    assert asyncio.run(accept_bamboohr_webhook(_bamboo(_body(BAMBOO)), deps=flaky_deps)).status == 202
    # the first employee twice (the worker absorbs it), the second once: nothing is lost
    ids = [e.id for _, e in flaky.sent]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]


def test_bamboohr_bad_signature_or_stale_timestamp_is_401(deps: IngressDeps, queue: FakeQueue) -> None:
    tampered = _bamboo(_body(BAMBOO))
    tampered = IncomingRequest("POST", tampered.headers, tampered.body + b" ")
    assert asyncio.run(accept_bamboohr_webhook(tampered, deps=deps)).status == 401
    assert (
        asyncio.run(
            accept_bamboohr_webhook(_bamboo(_body(BAMBOO), "2026-12-01T07:50:00+0000"), deps=deps)
        ).status
        == 401
    )
    assert queue.sent == []


def test_bamboohr_invalid_entry_is_400_and_nothing_is_queued(deps: IngressDeps, queue: FakeQueue) -> None:
    bad = {"employees": [BAMBOO["employees"][0], {**BAMBOO["employees"][1], "action": "Moved"}]}
    result = asyncio.run(accept_bamboohr_webhook(_bamboo(_body(bad)), deps=deps))
    assert result.status == 400
    assert [e["field"] for e in result.body["errors"]] == ["employees[1].action"]
    assert queue.sent == []
