"""HR webhook ingress, independent of Azure Functions: check, verify, parse, enqueue, answer.

Every request goes through the same gates, cheapest first, and nothing is enqueued unless all
pass: provider enabled (404) → ``Content-Type: application/json`` (415) → body ≤ 256 KiB (413)
→ signature and timestamp (401) → JSON and schema (400, naming each bad field) → enqueue on
``hr-events`` → 202 ``{"id": ...}``.

Each accepted canonical event becomes ``Envelope(type, payload=<canonical JSON>, id=<sha256 of
the delivery's identity>)``, so a redelivered webhook maps to the same envelope id. An accepted
delivery costs one storage round trip, the queue send: duplicates are absorbed where the effect
happens, by the ``hr-events`` worker, which applies each envelope id once (``onboarding:<id>``,
30 days) — not by a claim at the door. A send that fails answers 503 with Retry-After, never 202
for something that is not queued; a BambooHR delivery whose second send fails is answered 503
and resent whole, and the worker absorbs the entries it already has.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from shared.config.plan import HrProviders
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError, classify
from shared.hr.bamboohr import map_bamboohr_payload, verify_bamboohr
from shared.hr.events import HrEvent, parse_hr_event
from shared.hr.signatures import SignatureError, StandardWebhooksVerifier
from shared.http_ingress import (
    MAX_BODY_BYTES,
    IncomingRequest,
    IngressResult,
    bad_request,
    check_json_request,
    decode_json,
    failure,
)
from shared.names import HR_EVENTS
from shared.queues import Sender
from shared.state import Clock, utc_now

__all__ = [
    "MAX_BODY_BYTES",
    "PROVIDER_BAMBOOHR",
    "PROVIDER_STANDARD",
    "IncomingRequest",
    "IngressDeps",
    "IngressResult",
    "accept_bamboohr_webhook",
    "accept_hr_webhook",
    "event_envelope_id",
]

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS: Final = 30
PROVIDER_STANDARD: Final = "standard-webhooks"
PROVIDER_BAMBOOHR: Final = "bamboohr"


@dataclass(frozen=True, slots=True)
class IngressDeps:
    """Everything ingress talks to; built once per process from the services."""

    providers: HrProviders
    queue: Sender
    clock: Clock = utc_now


def event_envelope_id(provider: str, delivery_key: str) -> str:
    """The deterministic envelope id of one delivered event: sha256 hex of ``provider:key``."""
    return hashlib.sha256(f"{provider}:{delivery_key}".encode()).hexdigest()


async def accept_hr_webhook(request: IncomingRequest, *, deps: IngressDeps) -> IngressResult:
    """Handle ``POST /api/hr/events`` (canonical events behind Standard Webhooks signatures)."""
    config = deps.providers.standard_webhooks
    if not config.enabled:
        return failure(404, "the Standard Webhooks HR endpoint is not enabled in the plan")
    refused = check_json_request(request)
    if refused is not None:
        return refused
    try:
        verifier = _verifier(tuple(s.get_secret_value() for s in config.secrets), config.tolerance_seconds)
        delivery = verifier.verify(request.headers, request.body, now=deps.clock())
    except SignatureError as exc:
        return _unauthorized(exc, provider=PROVIDER_STANDARD)
    try:
        event = parse_hr_event(decode_json(request.body))
    except InvalidPayloadError as exc:
        return _bad_request(exc, provider=PROVIDER_STANDARD)
    envelope = _envelope(event, event_envelope_id(PROVIDER_STANDARD, delivery.webhook_id))
    unsent = await _enqueue_all([envelope], deps)
    return unsent or IngressResult(202, {"id": envelope.id})


async def accept_bamboohr_webhook(request: IncomingRequest, *, deps: IngressDeps) -> IngressResult:
    """Handle ``POST /api/hr/bamboohr`` (BambooHR field-based webhooks, one event per employee)."""
    config = deps.providers.bamboohr
    if not config.enabled or config.secret is None:
        return failure(404, "the BambooHR endpoint is not enabled in the plan")
    refused = check_json_request(request)
    if refused is not None:
        return refused
    try:
        verify_bamboohr(
            request.headers,
            request.body,
            private_key=config.secret.get_secret_value(),
            now=deps.clock(),
            tolerance=timedelta(seconds=deps.providers.standard_webhooks.tolerance_seconds),
        )
    except SignatureError as exc:
        return _unauthorized(exc, provider=PROVIDER_BAMBOOHR)
    try:
        mapped = map_bamboohr_payload(decode_json(request.body), field_map=config.field_map)
    except InvalidPayloadError as exc:
        return _bad_request(exc, provider=PROVIDER_BAMBOOHR)
    envelopes = [_envelope(m.event, event_envelope_id(PROVIDER_BAMBOOHR, m.dedupe_key)) for m in mapped]
    unsent = await _enqueue_all(envelopes, deps)
    return unsent or IngressResult(202, {"ids": [e.id for e in envelopes]})


def _envelope(event: HrEvent, envelope_id: str) -> Envelope:
    return Envelope(type=event.type, payload=event.to_payload(), id=envelope_id, occurred_at=event.timestamp)


async def _enqueue_all(envelopes: list[Envelope], deps: IngressDeps) -> IngressResult | None:
    """Send each envelope; the failure to answer with, or None when all are queued."""
    for envelope in envelopes:
        try:
            await deps.queue.send(HR_EVENTS, envelope)
        except Exception as exc:  # nothing was accepted from here on: the sender retries (all of it)
            logger.warning(
                "hr webhook not queued: %s",
                type(exc).__name__,
                extra={"envelope_id": envelope.id, "error_kind": classify(exc)},
            )
            return _unavailable()
        logger.info("hr webhook queued", extra={"envelope_id": envelope.id, "event_type": envelope.type})
    return None


@functools.lru_cache(maxsize=8)
def _verifier(secrets: tuple[str, ...], tolerance_seconds: float) -> StandardWebhooksVerifier:
    """The verifier for these secrets, built once per process (the secrets decoded once)."""
    return StandardWebhooksVerifier(list(secrets), tolerance=timedelta(seconds=tolerance_seconds))


def _unavailable() -> IngressResult:
    return failure(
        503, "the event could not be queued right now; retry later", retry_after=RETRY_AFTER_SECONDS
    )


def _unauthorized(exc: SignatureError, *, provider: str) -> IngressResult:
    logger.warning("hr webhook refused (%s): %s", provider, exc.message)
    return failure(401, exc.message)


def _bad_request(exc: InvalidPayloadError, *, provider: str) -> IngressResult:
    logger.warning("hr webhook invalid (%s): %s", provider, ", ".join(e["field"] for e in exc.errors))
    return bad_request(exc)
