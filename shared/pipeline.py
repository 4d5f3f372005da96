"""The queue-worker pipeline: one envelope in, routed by type, the error policy applied once for all.

Every queue worker is a ``Routes`` mapping (envelope type -> async handler) and a ``settle``
function naming how a permanent failure is recorded. ``handle_envelope`` does the rest, the same
way for every queue:

1. parse the envelope (a body that is not one is settled as ``InvalidPayloadError``);
2. resume the producer's W3C trace (``traceparent``) and set the log context (envelope id, type);
3. route by ``envelope.type`` (an unknown type is settled as ``InvalidPayloadError``);
4. classify what the handler raised (``shared.errors.classify``):
   - ``BusyError`` (another worker holds the work): the envelope is sent again with the holder's
     ``retry_after`` as its delay and this delivery is settled, so waiting costs no dequeue count;
   - permanent: audited, alerted on (``alerts`` queue) and settled: it never burns retries;
   - retryable or unknown: re-raised, so the host retries and finally poisons the message.

See docs/architecture.md, "Adding a queue worker".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.alerting import Alert, Severity, raise_alert
from shared.envelope import Envelope
from shared.errors import BusyError, InvalidPayloadError, PermanentError, classify
from shared.queues import Sender, defer
from shared.state import AsyncStores, AuditEntry, Clock, utc_now
from shared.telemetry import log_context, start_span_from_traceparent

if TYPE_CHECKING:
    from shared.services import Services

__all__ = ["Handler", "PipelineDeps", "QueueWorker", "Routes", "Settle", "Settlement", "handle_envelope"]

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[Any]]
Routes = Mapping[str, Handler]


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one permanent failure is recorded: an audit entry and an alert."""

    action: str  # the audit action, e.g. "onboarding.HrEventRejected"
    target: str  # the audit target: the user, the wave, or the envelope id
    alertname: str
    severity: Severity
    alert_key: str  # the alert's dedupe key
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


Settle = Callable[[PermanentError, Envelope | None], Settlement]


@dataclass(frozen=True, slots=True)
class QueueWorker:
    """One queue worker: its audit actor (and alert source), its routes over the services, how it settles."""

    actor: str
    routes: Callable[[Services], Routes]
    settle: Settle


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    """What the pipeline itself writes to: the audit log, the queues (defer, alerts), the clock."""

    queue: str  # the queue this worker consumes (a deferred envelope goes back there)
    actor: str  # the audit actor and alert source
    state: AsyncStores
    queues: Sender
    clock: Clock = utc_now


async def handle_envelope(
    body: str | bytes, routes: Routes, deps: PipelineDeps, *, on_permanent: Settle
) -> Any:
    """Handle one queue message body; returns the handler's outcome, or the error it settled.

    Raises:
        RetryableError: a transient failure; the message must be retried.
        Exception: anything unexpected (treated as retryable by the host).
    """
    try:
        envelope = Envelope.from_json(body)
    except InvalidPayloadError as exc:
        await _settle(exc, None, deps, on_permanent)
        return exc
    attributes = {"messaging.message.id": envelope.id, "waveguard.event_type": envelope.type}
    with (
        log_context(envelope_id=envelope.id, event_type=envelope.type),
        start_span_from_traceparent(f"process {envelope.type}", envelope.traceparent, attributes),
    ):
        try:
            handler = routes.get(envelope.type)
            if handler is None:
                raise InvalidPayloadError.for_field(
                    "type",
                    f"unknown {deps.queue} type {envelope.type!r} (known: {', '.join(sorted(routes))})",
                )
            outcome = await handler(envelope)
        except BusyError as exc:
            delay = await defer(deps.queues, deps.queue, envelope, exc)
            log.info("message deferred: another worker holds its work", extra={"delay_seconds": delay})
            return exc
        except Exception as exc:
            if classify(exc) != "permanent":
                raise
            error = exc if isinstance(exc, PermanentError) else PermanentError(type(exc).__name__)
            await _settle(error, envelope, deps, on_permanent)
            return error
        log.info("message handled", extra={"status": str(getattr(outcome, "status", "done"))})
        return outcome


async def _settle(
    error: PermanentError, envelope: Envelope | None, deps: PipelineDeps, settle: Settle
) -> None:
    """Audit and page a permanent failure (storage failing here makes the message retry instead).

    Raises:
        RetryableError: the audit log or the alerts queue is unavailable.
    """
    settlement = settle(error, envelope)
    envelope_id = envelope.id if envelope is not None else "unparseable"
    details = {
        "envelopeId": envelope_id,
        "eventType": envelope.type if envelope is not None else None,
        **settlement.details,
        **error.to_dict(),
    }
    details.pop("correlationId", None)
    log.warning(
        "%s message failed permanently: %s", deps.queue, error, extra={"alertname": settlement.alertname}
    )
    entry = AuditEntry(
        deps.actor,
        settlement.action,
        settlement.target,
        str(error),
        correlation_id=envelope_id,
        details=details,
    )
    await deps.state.audit.append(entry)
    alert = Alert(
        key=settlement.alert_key,
        severity=settlement.severity,
        summary=f"{settlement.alertname}: {error}",
        source=deps.actor,
        labels={"alertname": settlement.alertname, "severity": settlement.severity, **settlement.labels},
        details=details,
        occurred_at=deps.clock(),
    )
    await raise_alert(deps.queues, alert)
