"""Fuzzing both HR routes: no input, authenticated or not, ever reaches a 5xx or an exception, and
nothing is queued unless the answer is 202."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.config import BambooHr, HrProviders
from shared.config.plan import StandardWebhooks
from shared.envelope import Envelope
from shared.hr.bamboohr import sign_bamboohr
from shared.hr.ingress import IncomingRequest, IngressDeps, accept_bamboohr_webhook, accept_hr_webhook
from shared.hr.signatures import decode_whsec, sign_standard_webhook
from shared.hr.timestamps import parse_iso_instant, parse_unix_seconds
from tests.aio import aio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BAMBOO_KEY = "bamboo-private-key-for-tests"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ALLOWED = {202, 400, 401, 404, 405, 413, 415}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ABSURD_TIMESTAMPS = [
    "999999999999",
    "253402300800",
    "253402300799",
    "0",
    "-1",
    "1e10",
    "1.5",
    "",
    " ",
    "١٢٣",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2026-12-01T08:00:00",
    "nan",
    "\x00",
    "2026-13-45T99:99:99Z",
    "+999999-01-01T00:00:00Z",
    "9" * 40,
]


class _Queue:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, queue_name: str, envelope: Envelope) -> str:
        self.sent.append(envelope)
        return "m"


def _deps() -> tuple[IngressDeps, _Queue]:
    queue = _Queue()
    providers = HrProviders(
        standard_webhooks=StandardWebhooks(enabled=True, secrets=[SecretStr(SECRET)]),
        bamboohr=BambooHr(enabled=True, secret=SecretStr(BAMBOO_KEY)),
    )
    return IngressDeps(providers=providers, queue=aio(queue), clock=lambda: NOW), queue


def _check(result: Any, queue: _Queue) -> None:
    assert result.status in ALLOWED, (result.status, result.body)
    json.loads(result.body_text())
    if result.status != 202:
        assert queue.sent == []


text = st.text(max_size=80)
header_values = st.one_of(text, st.sampled_from(ABSURD_TIMESTAMPS), st.text(max_size=5000))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
hire_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["employee.hired", "employee.updated", "employee.terminated", "x"])},
    optional={"timestamp": st.one_of(st.sampled_from(ABSURD_TIMESTAMPS), text), "data": json_values},
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    hire_like.map(lambda v: json.dumps(v).encode()),
)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "x"]
        ),
        header_values,
    ),
    body=bodies,
)
def test_standard_webhooks_unsigned_garbage_never_reaches_5xx(headers: dict[str, str], body: bytes) -> None:
    deps, queue = _deps()
    _check(asyncio.run(accept_hr_webhook(IncomingRequest("POST", headers, body), deps=deps)), queue)


@FUZZ
@given(timestamp=st.one_of(st.sampled_from(ABSURD_TIMESTAMPS), text), body=bodies)
def test_standard_webhooks_signed_garbage_never_reaches_5xx(timestamp: str, body: bytes) -> None:
    # Validly signed (so the content parsers are reached) with any timestamp text.
    deps, queue = _deps()
    headers = {"content-type": "application/json", "webhook-id": "msg_fuzz", "webhook-timestamp": timestamp}
    if timestamp.isascii():
        key = decode_whsec(SECRET)
        headers["webhook-signature"] = sign_standard_webhook(key, "msg_fuzz", timestamp, body)  # type: ignore[arg-type]
    _check(asyncio.run(accept_hr_webhook(IncomingRequest("POST", headers, body), deps=deps)), queue)


@FUZZ
@given(body=bodies)
def test_standard_webhooks_signed_now_with_garbage_content_is_4xx_or_202(body: bytes) -> None:
    deps, queue = _deps()
    stamp = str(int(NOW.timestamp()))
    signature = sign_standard_webhook(decode_whsec(SECRET), "msg_fuzz", int(stamp), body)
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_fuzz",
        "webhook-timestamp": stamp,
        "webhook-signature": signature,
    }
    _check(asyncio.run(accept_hr_webhook(IncomingRequest("POST", headers, body), deps=deps)), queue)


@FUZZ
@given(timestamp=st.one_of(st.sampled_from(ABSURD_TIMESTAMPS), text), body=bodies)
def test_bamboohr_signed_garbage_never_reaches_5xx(timestamp: str, body: bytes) -> None:
    deps, queue = _deps()
    headers = {"content-type": "application/json", "x-bamboohr-timestamp": timestamp}
    try:
        headers["x-bamboohr-signature"] = sign_bamboohr(BAMBOO_KEY, timestamp, body)
    except UnicodeEncodeError:
        headers["x-bamboohr-signature"] = "00"
    _check(asyncio.run(accept_bamboohr_webhook(IncomingRequest("POST", headers, body), deps=deps)), queue)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-bamboohr-timestamp", "x-bamboohr-signature", "content-type", "x"]), header_values
    ),
    body=bodies,
)
def test_bamboohr_unsigned_garbage_never_reaches_5xx(headers: dict[str, str], body: bytes) -> None:
    deps, queue = _deps()
    _check(asyncio.run(accept_bamboohr_webhook(IncomingRequest("POST", headers, body), deps=deps)), queue)


def test_the_reported_timestamps_are_refused_not_raised() -> None:
    for value in ("999999999999", "253402300800", "-1", "1.5", ""):
        assert parse_unix_seconds(value) is None
    for value in (
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "2026-12-01T08:00:00",
        "999999999999",
    ):
        assert parse_iso_instant(value) is None
    assert parse_unix_seconds("1764576000") == datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_iso_instant("2026-12-01T08:00:00+01:00") == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
