"""Standard Webhooks and BambooHR signature checks, with signatures made by clients we did not write."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shared.hr.bamboohr import sign_bamboohr, verify_bamboohr
from shared.hr.signatures import SignatureError, StandardWebhooksVerifier, sign_standard_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BODY = b'{"type":"employee.hired"}'


def _headers(
    secret: str = SECRET, *, msg_id: str = "msg_1", at: datetime = NOW, body: bytes = BODY
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_signature_from_the_official_client_is_accepted() -> None:
    delivery = StandardWebhooksVerifier([SECRET]).verify(_headers(), BODY, now=NOW)
    assert delivery.webhook_id == "msg_1"
    assert delivery.timestamp == NOW


def test_our_signer_matches_the_official_client() -> None:
    ours = sign_standard_webhook(base64.b64decode(SECRET[6:]), "msg_1", int(NOW.timestamp()), BODY)
    assert ours == Webhook(SECRET).sign("msg_1", NOW, BODY.decode())


def test_any_configured_secret_is_accepted_during_rotation() -> None:
    verifier = StandardWebhooksVerifier([OTHER_SECRET, SECRET])
    assert verifier.verify(_headers(SECRET), BODY, now=NOW).webhook_id == "msg_1"
    assert verifier.verify(_headers(OTHER_SECRET), BODY, now=NOW).webhook_id == "msg_1"


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = _headers()
    wrong = Webhook(OTHER_SECRET).sign("msg_1", NOW, BODY.decode())
    headers["webhook-signature"] = f"v1a,bm90LW91cnM= {wrong} {headers['webhook-signature']}"
    assert StandardWebhooksVerifier([SECRET]).verify(headers, BODY, now=NOW).webhook_id == "msg_1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, b: (h, b + b" "), "no webhook-signature matches"),
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "no webhook-signature matches"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing webhook-id"),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b),
            "missing webhook-timestamp",
        ),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
            "missing webhook-signature",
        ),
        (lambda h, b: ({**h, "webhook-timestamp": "2026-12-01T08:00:00Z"}, b), "integer seconds"),
        (lambda h, b: ({**h, "webhook-signature": "v2,abc"}, b), "no v1 signature"),
        (lambda h, b: ({**h, "webhook-signature": "v1,not base64!"}, b), "no v1 signature"),
    ],
)
def test_tampered_or_incomplete_deliveries_are_refused(mutate: object, message: str) -> None:
    headers, body = mutate(_headers(), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        StandardWebhooksVerifier([SECRET]).verify(headers, body, now=NOW)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        StandardWebhooksVerifier([SECRET]).verify(_headers(OTHER_SECRET), BODY, now=NOW)


@pytest.mark.parametrize(("offset", "word"), [(-301, "too old"), (301, "in the future")])
def test_timestamps_outside_the_tolerance_are_refused(offset: int, word: str) -> None:
    headers = _headers(at=NOW + timedelta(seconds=offset))
    with pytest.raises(SignatureError, match=word):
        StandardWebhooksVerifier([SECRET]).verify(headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamps_at_the_tolerance_edge_are_accepted(offset: int) -> None:
    headers = _headers(at=NOW + timedelta(seconds=offset))
    assert StandardWebhooksVerifier([SECRET]).verify(headers, BODY, now=NOW)


def test_tolerance_is_configurable() -> None:
    headers = _headers(at=NOW - timedelta(seconds=90))
    with pytest.raises(SignatureError, match="too old"):
        StandardWebhooksVerifier([SECRET], tolerance=timedelta(seconds=60)).verify(headers, BODY, now=NOW)


def test_refusal_never_contains_the_secret_or_the_expected_signature() -> None:
    with pytest.raises(SignatureError) as exc:
        StandardWebhooksVerifier([SECRET]).verify(_headers(OTHER_SECRET), BODY, now=NOW)
    expected = Webhook(SECRET).sign("msg_1", NOW, BODY.decode()).split(",")[1]
    assert SECRET[6:] not in str(exc.value)
    assert expected not in str(exc.value)


# BambooHR: "hash_hmac('sha256', $rawBody . $timestamp, $privateKey)" per its documentation.
BAMBOO_KEY = "bamboo-private-key-for-tests"
BAMBOO_TS = "2026-12-01T08:00:00+0000"


def _documented_bamboo_signature(body: bytes, timestamp: str, key: str = BAMBOO_KEY) -> str:
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def _bamboo_headers(body: bytes = BODY, timestamp: str = BAMBOO_TS, key: str = BAMBOO_KEY) -> dict[str, str]:
    return {
        "x-bamboohr-timestamp": timestamp,
        "x-bamboohr-signature": _documented_bamboo_signature(body, timestamp, key),
    }


def test_bamboohr_signature_per_documentation_is_accepted() -> None:
    assert sign_bamboohr(BAMBOO_KEY, BAMBOO_TS, BODY) == _documented_bamboo_signature(BODY, BAMBOO_TS)
    assert verify_bamboohr(_bamboo_headers(), BODY, private_key=BAMBOO_KEY, now=NOW) == NOW


def test_bamboohr_unix_seconds_timestamp_is_accepted() -> None:
    ts = str(int(NOW.timestamp()))
    assert verify_bamboohr(_bamboo_headers(timestamp=ts), BODY, private_key=BAMBOO_KEY, now=NOW) == NOW


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (_bamboo_headers(), BODY + b" ", "does not match"),
        (_bamboo_headers(key="other-key"), BODY, "does not match"),
        ({"x-bamboohr-timestamp": BAMBOO_TS}, BODY, "missing X-BambooHR-Signature"),
        ({"x-bamboohr-signature": "00"}, BODY, "missing X-BambooHR-Timestamp"),
        (_bamboo_headers(timestamp="2026-12-01T07:54:00+0000"), BODY, "too old"),
        (_bamboo_headers(timestamp="2026-12-01T08:06:00Z"), BODY, "in the future"),
        (_bamboo_headers(timestamp="yesterday"), BODY, "ISO-8601"),
    ],
)
def test_bamboohr_bad_deliveries_are_refused(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_bamboohr(headers, body, private_key=BAMBOO_KEY, now=NOW)
