"""The ``hr-events`` queue worker: a route per HR event type, and how its permanent failures are recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from shared.alerting import Severity
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError, NotFoundError, PermanentError, SafetyViolationError
from shared.hr.events import EMPLOYEE_HIRED, EMPLOYEE_TERMINATED, EMPLOYEE_UPDATED, HrEvent, parse_hr_event
from shared.names import HR_EVENTS
from shared.onboarding.deps import ACTOR, Deps
from shared.onboarding.hired import handle_hired
from shared.onboarding.terminated import handle_terminated
from shared.onboarding.updated import handle_updated
from shared.pipeline import PipelineDeps, QueueWorker, Routes, Settlement, handle_envelope

__all__ = ["ACTOR", "HR_WORKER", "hr_routes", "parse_event", "process_hr_message", "settle"]

UseCase = Callable[[Envelope, HrEvent, Deps], Awaitable[object]]


def parse_event(envelope: Envelope) -> HrEvent:
    """The HR event the envelope carries.

    Raises:
        InvalidPayloadError: the payload is not a valid HR event of the envelope's type.
    """
    event = parse_hr_event(envelope.payload)
    if event.type != envelope.type:
        raise InvalidPayloadError.for_field(
            "payload.type", f"{event.type!r} does not match the envelope type"
        )
    return event


def hr_routes(deps: Deps) -> Routes:
    """``employee.hired`` / ``employee.updated`` / ``employee.terminated`` → their use cases."""

    def route(use_case: UseCase) -> Callable[[Envelope], Awaitable[object]]:
        async def handle(envelope: Envelope) -> object:
            return await use_case(envelope, parse_event(envelope), deps)

        return handle

    return {
        EMPLOYEE_HIRED: route(handle_hired),
        EMPLOYEE_UPDATED: route(handle_updated),
        EMPLOYEE_TERMINATED: route(handle_terminated),
    }


def settle(error: PermanentError, envelope: Envelope | None) -> Settlement:
    """The alert a permanent HR failure raises, named for what went wrong, about the employee."""
    event: HrEvent | None = None
    if envelope is not None:
        with contextlib.suppress(PermanentError):
            event = parse_event(envelope)
    severity, alertname = _classification(error, event)
    envelope_id = envelope.id if envelope is not None else "unparseable"
    return Settlement(
        action=f"onboarding.{alertname}",
        target=event.subject if event is not None else envelope_id,
        alertname=alertname,
        severity=severity,
        alert_key=f"onboarding:{envelope_id}:{alertname}",
        labels={"eventType": envelope.type if envelope is not None else "unknown"},
        details={"employeeId": event.data.employee_id if event is not None else None},
    )


def _classification(error: PermanentError, event: HrEvent | None) -> tuple[Severity, str]:
    if isinstance(error, SafetyViolationError):
        return "critical", "BreakGlassTargeted"
    if isinstance(error, InvalidPayloadError):
        return "medium", "HrEventRejected"
    if isinstance(error, NotFoundError) and event is not None and event.type == EMPLOYEE_HIRED:
        return "high", "HireNotProvisioned"
    return "high", "OnboardingFailed"


async def process_hr_message(body: str | bytes, deps: Deps) -> object:
    """One ``hr-events`` body through the pipeline (as the trigger runs it, over ``deps``)."""
    pipeline = PipelineDeps(HR_EVENTS, ACTOR, deps.state, deps.queues, deps.clock)
    return await handle_envelope(body, hr_routes(deps), pipeline, on_permanent=settle)


# The ``hr-events`` worker as the trigger runs it.
HR_WORKER: Final = QueueWorker(
    actor=ACTOR, routes=lambda services: hr_routes(services.onboarding), settle=settle
)
