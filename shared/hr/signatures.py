"""Standard Webhooks signature verification (https://www.standardwebhooks.com, spec v1).

The sender signs ``{webhook-id}.{webhook-timestamp}.{raw body}`` with HMAC-SHA256 under the
base64-decoded part of a ``whsec_...`` secret and sends ``webhook-signature: v1,<base64>`` —
several space-separated signatures while it rotates its own keys. We accept a request when any
``v1`` signature matches any configured secret (our side of a rotation) and the timestamp is
within the tolerance in both directions (a replay defence: stale and far-future are refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from shared.errors import PermanentError
from shared.hr.timestamps import parse_unix_seconds

__all__ = [
    "DEFAULT_TOLERANCE",
    "SignatureError",
    "StandardWebhooksVerifier",
    "VerifiedDelivery",
    "decode_whsec",
    "sign_standard_webhook",
]

DEFAULT_TOLERANCE: Final = timedelta(minutes=5)
HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
_SECRET_PREFIX: Final = "whsec_"
_MAX_ID_LENGTH: Final = 200
# A header carrying hundreds of signatures is an attack on our CPU, not a key rotation.
_MAX_SIGNATURES: Final = 10


class SignatureError(PermanentError):
    """The request is not authentic: missing or malformed headers, no matching signature, stale.

    The message is safe to return to the caller: it never includes secrets or expected values.
    """


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """What a verified request told us about itself."""

    webhook_id: str
    timestamp: datetime


def decode_whsec(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (the prefix is optional, as in the spec).

    Raises:
        ValueError: the secret is empty or not base64 (the message does not include it).
    """
    raw = secret.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not base64 after 'whsec_'") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign_standard_webhook(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery (for senders and our own tools)."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class StandardWebhooksVerifier:
    """Verifies ``webhook-*`` headers against one or more secrets (rotation)."""

    def __init__(self, secrets: Sequence[str], *, tolerance: timedelta = DEFAULT_TOLERANCE) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        self._keys = tuple(decode_whsec(s) for s in secrets)
        self.tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: datetime) -> VerifiedDelivery:
        """Check the headers and signature of one delivery.

        ``headers`` must have lower-case names.

        Raises:
            SignatureError: a header is missing or malformed, the timestamp is outside the
                tolerance, or no ``v1`` signature matches any configured secret.
        """
        webhook_id = _required(headers, HEADER_ID)
        timestamp_text = _required(headers, HEADER_TIMESTAMP)
        signature_header = _required(headers, HEADER_SIGNATURE)
        if len(webhook_id) > _MAX_ID_LENGTH or not webhook_id.isprintable():
            raise SignatureError(f"{HEADER_ID} must be at most {_MAX_ID_LENGTH} printable characters")
        timestamp = _parse_unix_seconds(timestamp_text)
        check_freshness(timestamp, now=now, tolerance=self.tolerance, header=HEADER_TIMESTAMP)
        offered = _offered_signatures(signature_header)
        signed = f"{webhook_id}.{timestamp_text}.".encode() + body
        # Compare every pair without stopping early: the time taken reveals nothing about which
        # secret or which position matched.
        matched = False
        for key in self._keys:
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            for candidate in offered:
                matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureError(f"no {HEADER_SIGNATURE} matches a configured secret")
        return VerifiedDelivery(webhook_id=webhook_id, timestamp=timestamp)


def check_freshness(moment: datetime, *, now: datetime, tolerance: timedelta, header: str) -> None:
    """Refuse a delivery timestamp further than ``tolerance`` from ``now`` in either direction.

    Raises:
        SignatureError: the timestamp is too old or too far in the future.
    """
    if moment < now - tolerance:
        raise SignatureError(f"{header} is too old (tolerance {int(tolerance.total_seconds())} s)")
    if moment > now + tolerance:
        raise SignatureError(f"{header} is in the future (tolerance {int(tolerance.total_seconds())} s)")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _parse_unix_seconds(text: str) -> datetime:
    # The spec sends integer seconds; anything else (floats, dates, absurd values) is not a Standard Webhook.
    moment = parse_unix_seconds(text)
    if moment is None:
        raise SignatureError(f"{HEADER_TIMESTAMP} must be integer seconds since the Unix epoch")
    return moment


def _offered_signatures(header: str) -> list[bytes]:
    offered: list[bytes] = []
    for item in header.split()[:_MAX_SIGNATURES]:
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue  # other schemes (e.g. v1a asymmetric) are not ours to check
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not offered:
        raise SignatureError(f"{HEADER_SIGNATURE} holds no v1 signature")
    return offered
