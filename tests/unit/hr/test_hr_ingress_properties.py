"""Property tests: whatever a sender posts, ingress answers with a status it documents and never crashes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.config import BambooHr, HrProviders
from shared.config.plan import StandardWebhooks
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError
from shared.hr.bamboohr import map_bamboohr_payload, sign_bamboohr
from shared.hr.ingress import IncomingRequest, IngressDeps, accept_bamboohr_webhook, accept_hr_webhook
from shared.hr.signatures import decode_whsec, sign_standard_webhook
from tests.aio import aio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAMBOO_KEY = "bamboo-private-key-for-tests"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=20,
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers() | st.text(max_size=10) | _json,
        "action": st.sampled_from(["Created", "Updated", "Deleted"]) | _json,
        "timestamp": st.sampled_from(["2026-12-01T08:00:00+0000", "x"]) | _json,
        "fields": st.dictionaries(
            st.sampled_from(["Work Email", "Employee #", "Country", "Hire Date", "Status", "Department"]),
            _json | st.sampled_from(["ada@contoso.com", "United Kingdom", "2026-12-01", "Inactive"]),
        )
        | _json,
        "changedFields": st.lists(st.sampled_from(["Department", "Status"])) | _json,
    },
)


class _Queue:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, queue_name: str, envelope: Envelope) -> str:
        self.sent.append(Envelope.from_json(envelope.to_queue_text()))  # what the worker will read
        return str(len(self.sent))


def _deps(queue: _Queue) -> IngressDeps:
    providers = HrProviders(
        standard_webhooks=StandardWebhooks(enabled=True, secrets=[SecretStr(SECRET)]),
        bamboohr=BambooHr(enabled=True, secret=SecretStr(BAMBOO_KEY)),
    )
    return IngressDeps(
        providers=providers,
        queue=aio(queue),
        clock=lambda: NOW,
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(_json, st.fixed_dictionaries({"employees": st.lists(_entry, max_size=3) | _json})))
def test_bamboohr_mapper_raises_only_our_validation_error(payload: object) -> None:
    # Any other exception type escapes and fails the property.
    try:
        events = map_bamboohr_payload(payload)
    except InvalidPayloadError as exc:
        errors = exc.errors
        events = []
    else:
        errors = []
    assert bool(errors) != bool(events)
    assert all(e.event.data.employee_id or e.event.data.user_principal_name for e in events)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_signed_body_is_accepted_or_refused_with_400(body: bytes) -> None:
    queue = _Queue()
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": sign_standard_webhook(decode_whsec(SECRET), "msg_1", int(NOW.timestamp()), body),
    }
    result = asyncio.run(accept_hr_webhook(IncomingRequest("POST", headers, body), deps=_deps(queue)))
    assert result.status in (202, 400)
    assert len(queue.sent) == (1 if result.status == 202 else 0)
    json.loads(result.body_text())


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"employees": st.lists(_entry, max_size=3)}))
def test_any_signed_bamboohr_delivery_is_accepted_or_refused_with_400(payload: dict[str, object]) -> None:
    queue = _Queue()
    body = json.dumps(payload).encode()
    stamp = "2026-12-01T08:00:00+0000"
    headers = {
        "content-type": "application/json",
        "x-bamboohr-timestamp": stamp,
        "x-bamboohr-signature": sign_bamboohr(BAMBOO_KEY, stamp, body),
    }
    result = asyncio.run(accept_bamboohr_webhook(IncomingRequest("POST", headers, body), deps=_deps(queue)))
    assert result.status in (202, 400)
    if result.status == 400:
        assert queue.sent == []


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), st.text(max_size=60)
    )
)
def test_arbitrary_signature_headers_are_401_never_a_crash(headers: dict[str, str]) -> None:
    queue = _Queue()
    request = IncomingRequest("POST", {"content-type": "application/json", **headers}, b"{}")
    result = asyncio.run(accept_hr_webhook(request, deps=_deps(queue)))
    assert result.status == 401
    assert queue.sent == []
