"""One ``hr-events`` message: parse, route by type, and apply the error policy.

RetryableError (and anything unknown) propagates so the host retries and finally poisons the
message. A PermanentError is audited, alerted on and settled: it never burns retries.
"""

from __future__ import annotations

import logging
from typing import Final

from shared.alerting import Alert, Severity, raise_alert
from shared.envelope import Envelope
from shared.errors import (
    BusyError,
    InvalidPayloadError,
    NotFoundError,
    PermanentError,
    SafetyViolationError,
    classify,
)
from shared.hr.events import EMPLOYEE_HIRED, EMPLOYEE_TERMINATED, EMPLOYEE_UPDATED, HrEvent, parse_hr_event
from shared.names import HR_EVENTS
from shared.onboarding.deps import ACTOR, Deps, run_sync
from shared.onboarding.hired import HireOutcome, handle_hired
from shared.onboarding.terminated import TerminationOutcome, handle_terminated
from shared.onboarding.updated import UpdateOutcome, handle_updated
from shared.queues import defer
from shared.telemetry import log_context, start_span_from_traceparent

__all__ = ["Outcome", "process_hr_message"]

Outcome = HireOutcome | UpdateOutcome | TerminationOutcome | PermanentError | BusyError
log = logging.getLogger(__name__)
_SOURCE: Final = ACTOR


async def process_hr_message(body: str | bytes, deps: Deps) -> Outcome:
    """Handle one queue message body; returns what happened (a PermanentError when settled as failed).

    Raises:
        RetryableError: a transient failure; the message must be retried.
        Exception: anything unexpected (treated as retryable by the host).
    """
    try:
        envelope = Envelope.from_json(body)
    except InvalidPayloadError as exc:
        await _settle_failure(exc, None, None, deps)
        return exc
    attributes = {"messaging.message.id": envelope.id, "waveguard.event_type": envelope.type}
    with (
        log_context(envelope_id=envelope.id, event_type=envelope.type),
        start_span_from_traceparent(f"process {envelope.type}", envelope.traceparent, attributes),
    ):
        event: HrEvent | None = None
        try:
            event = _parse(envelope)
            outcome = await _route(envelope, event, deps)
        except BusyError as exc:
            delay = await run_sync(defer, deps.queues, HR_EVENTS, envelope, exc)
            log.info("hr event deferred: another worker holds it", extra={"delay_seconds": delay})
            return exc
        except Exception as exc:
            if classify(exc) == "permanent":
                error = exc if isinstance(exc, PermanentError) else PermanentError(type(exc).__name__)
                await _settle_failure(error, envelope, event, deps)
                return error
            raise
        log.info("hr event handled", extra={"status": outcome.status})
        return outcome


def _parse(envelope: Envelope) -> HrEvent:
    if envelope.type not in (EMPLOYEE_HIRED, EMPLOYEE_UPDATED, EMPLOYEE_TERMINATED):
        raise InvalidPayloadError.for_field("type", f"unknown HR event type {envelope.type!r}")
    event = parse_hr_event(envelope.payload)
    if event.type != envelope.type:
        raise InvalidPayloadError.for_field(
            "payload.type", f"{event.type!r} does not match the envelope type"
        )
    return event


async def _route(
    envelope: Envelope, event: HrEvent, deps: Deps
) -> HireOutcome | UpdateOutcome | TerminationOutcome:
    if event.type == EMPLOYEE_HIRED:
        return await handle_hired(envelope, event, deps)
    if event.type == EMPLOYEE_UPDATED:
        return await handle_updated(envelope, event, deps)
    return await handle_terminated(envelope, event, deps)


def _classification(error: PermanentError, event: HrEvent | None) -> tuple[Severity, str]:
    if isinstance(error, SafetyViolationError):
        return "critical", "BreakGlassTargeted"
    if isinstance(error, InvalidPayloadError):
        return "medium", "HrEventRejected"
    if isinstance(error, NotFoundError) and event is not None and event.type == EMPLOYEE_HIRED:
        return "high", "HireNotProvisioned"
    return "high", "OnboardingFailed"


async def _settle_failure(
    error: PermanentError, envelope: Envelope | None, event: HrEvent | None, deps: Deps
) -> None:
    """Record and page a permanent failure (storage failing here makes the message retry instead).

    Raises:
        RetryableError: the audit log or the alerts queue is unavailable.
    """
    severity, alertname = _classification(error, event)
    envelope_id = envelope.id if envelope is not None else "unparseable"
    subject = event.subject if event is not None else envelope_id
    details = {
        "envelopeId": envelope_id,
        "eventType": envelope.type if envelope else None,
        "employeeId": event.data.employee_id if event is not None else None,
        **error.to_dict(),
    }
    details.pop("correlationId", None)
    log.warning("hr event failed permanently: %s", error, extra={"alertname": alertname})
    await deps.audit(f"onboarding.{alertname}", subject, str(error), envelope_id, **details)
    alert = Alert(
        key=f"onboarding:{envelope_id}:{alertname}",
        severity=severity,
        summary=f"{alertname}: {error}",
        source=_SOURCE,
        labels={
            "alertname": alertname,
            "severity": severity,
            "eventType": envelope.type if envelope else "unknown",
        },
        details=details,
        occurred_at=deps.clock(),
    )
    await run_sync(raise_alert, deps.queues, alert)
