"""Helpdesk webhook ingress, independent of Azure Functions: check, verify, parse, store, answer.

Every request passes the same gates as the HR ingress, cheapest first, and nothing is written
unless all pass: source configured (404) → ``Content-Type: application/json`` (415) → body ≤ 256
KiB (413) → signature (401) → JSON and schema (400, naming each bad field) → one conditional write
→ 202 ``{"id", "mfaRelated", "outcome"}``. Jira's signed body must also carry a ``timestamp``
within ``timestampToleranceSeconds`` (401 otherwise).

Unlike HR events, a ticket is not queued: its whole effect is one small row in ``wgstate`` and it
needs no Graph, so the ingress writes it itself with a conditional write (docs/architecture.md,
'Helpdesk tickets'). A replay of the same ticket state is ``unchanged``. A ``createdAt`` more than
``MAX_CLOCK_SKEW`` ahead is refused (400 naming it); one older than ``RETENTION`` counts in no
window and is answered 202 ``ignored`` (an update of an old ticket is a valid delivery: a 4xx
would only make the sender retry it). Storage unavailable answers 503 with Retry-After, never 202
for something not kept; a row the store refuses (too large) answers 400.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from shared.config.helpdesk import Helpdesk
from shared.errors import InvalidPayloadError, RetryableError, WaveGuardError, classify
from shared.helpdesk.jira import check_jira_timestamp, map_jira_payload, verify_jira
from shared.helpdesk.store import MAX_CLOCK_SKEW, RETENTION, Outcome, is_expired, record_ticket
from shared.helpdesk.tickets import Ticket, parse_ticket
from shared.hr.signatures import SignatureError, StandardWebhooksVerifier
from shared.http_ingress import (
    IncomingRequest,
    IngressResult,
    bad_request,
    check_json_request,
    decode_json,
    failure,
)
from shared.state import AsyncKeyValuePort, Clock, utc_now

__all__ = [
    "SOURCE_JIRA",
    "SOURCE_STANDARD",
    "HelpdeskDeps",
    "accept_jira_webhook",
    "accept_ticket_webhook",
]

log = logging.getLogger(__name__)

SOURCE_STANDARD: Final = "standard-webhooks"
SOURCE_JIRA: Final = "jira"
RETRY_AFTER_SECONDS: Final = 30


@dataclass(frozen=True, slots=True)
class HelpdeskDeps:
    """Everything the helpdesk ingress talks to; built once per process from the services."""

    config: Helpdesk
    kv: AsyncKeyValuePort
    clock: Clock = utc_now


async def accept_ticket_webhook(request: IncomingRequest, *, deps: HelpdeskDeps) -> IngressResult:
    """Handle ``POST /api/helpdesk/tickets`` (canonical tickets behind Standard Webhooks signatures)."""
    config = deps.config.standard_webhooks
    if not config.enabled:
        return failure(
            404, "the helpdesk ticket endpoint is not configured (helpdesk.standardWebhooks.secrets)"
        )
    refused = check_json_request(request)
    if refused is not None:
        return refused
    try:
        _verifier(config.secret_values(), config.tolerance_seconds).verify(
            request.headers, request.body, now=deps.clock()
        )
    except SignatureError as exc:
        return _unauthorized(exc, source=SOURCE_STANDARD)
    try:
        ticket = parse_ticket(decode_json(request.body))
    except InvalidPayloadError as exc:
        return _invalid(exc, source=SOURCE_STANDARD)
    return await _keep(ticket, SOURCE_STANDARD, deps, created_field="createdAt")


async def accept_jira_webhook(request: IncomingRequest, *, deps: HelpdeskDeps) -> IngressResult:
    """Handle ``POST /api/helpdesk/jira`` (Jira admin webhooks signed with ``X-Hub-Signature``)."""
    config = deps.config.jira
    if config.secret is None:
        return failure(404, "the Jira helpdesk endpoint is not configured (helpdesk.jira.secret)")
    refused = check_json_request(request)
    if refused is not None:
        return refused
    try:
        verify_jira(request.headers, request.body, secret=config.secret.get_secret_value())
    except SignatureError as exc:
        return _unauthorized(exc, source=SOURCE_JIRA)
    try:
        payload = decode_json(request.body)
    except InvalidPayloadError as exc:
        return _invalid(exc, source=SOURCE_JIRA)
    try:  # the timestamp is in the signed body: a delivery replayed later is refused
        tolerance = timedelta(seconds=config.timestamp_tolerance_seconds)
        check_jira_timestamp(payload, now=deps.clock(), tolerance=tolerance)
    except SignatureError as exc:
        return _unauthorized(exc, source=SOURCE_JIRA)
    try:
        delivery = map_jira_payload(payload, config=config)
    except InvalidPayloadError as exc:
        return _invalid(exc, source=SOURCE_JIRA)
    if delivery.ticket is None:
        log.info("helpdesk webhook ignored (%s): %s", SOURCE_JIRA, delivery.event)
        return IngressResult(
            202, {"id": None, "mfaRelated": False, "outcome": "ignored", "detail": delivery.ignored}
        )
    return await _keep(delivery.ticket, SOURCE_JIRA, deps, created_field="issue.fields.created")


async def _keep(ticket: Ticket, source: str, deps: HelpdeskDeps, *, created_field: str) -> IngressResult:
    now = deps.clock()
    if ticket.created_at > now + MAX_CLOCK_SKEW:
        ahead = (
            f"is more than {int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes ahead of the receiver's clock"
        )
        return _invalid(InvalidPayloadError.for_field(created_field, ahead), source=source)
    mfa_related = ticket.state != "deleted" and deps.config.is_mfa_related(ticket.category, ticket.tags)
    try:
        outcome = await record_ticket(deps.kv, ticket, source=source, mfa_related=mfa_related, now=now)
    except RetryableError as exc:  # storage down, or the row kept changing: the sender retries
        log.warning("helpdesk ticket not kept: %s", type(exc).__name__, extra={"error_kind": classify(exc)})
        return failure(
            503, "the ticket could not be stored right now; retry later", retry_after=RETRY_AFTER_SECONDS
        )
    except InvalidPayloadError as exc:  # the store refused the row (too large): a retry would too
        refused = f"the ticket cannot be stored ({exc.message})"
        return _invalid(InvalidPayloadError.for_field("body", refused), source=source)
    except WaveGuardError as exc:  # the store refused us (configuration, permissions): not the sender's
        log.error("helpdesk ticket not kept: %s", type(exc).__name__, extra={"error_kind": classify(exc)})
        return failure(500, "the ticket could not be stored")
    log.info("helpdesk ticket %s", outcome.value, extra={"source": source, "mfa_related": mfa_related})
    answer: dict[str, object] = {"id": ticket.id, "mfaRelated": mfa_related, "outcome": outcome.value}
    if outcome is Outcome.IGNORED and is_expired(ticket, now=now):
        answer["detail"] = (
            f"{created_field} is more than {RETENTION.days} days ago: it counts in no gate window"
        )
    return IngressResult(202, answer)


@functools.lru_cache(maxsize=8)
def _verifier(secrets: tuple[str, ...], tolerance_seconds: float) -> StandardWebhooksVerifier:
    """The verifier for these secrets, built once per process (the secrets decoded once)."""
    return StandardWebhooksVerifier(list(secrets), tolerance=timedelta(seconds=tolerance_seconds))


def _unauthorized(exc: SignatureError, *, source: str) -> IngressResult:
    log.warning("helpdesk webhook refused (%s): %s", source, exc.message)
    return failure(401, exc.message)


def _invalid(exc: InvalidPayloadError, *, source: str) -> IngressResult:
    log.warning("helpdesk webhook invalid (%s): %s", source, ", ".join(e["field"] for e in exc.errors))
    return bad_request(exc)
