"""``employee.terminated``: delete any pending TAP and stop registration tracking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.envelope import Envelope
from shared.hr.events import HrEvent
from shared.onboarding.common import (
    REGISTRATION_NAMESPACE,
    find_employee,
    once_per_envelope,
    record_leaver,
    refuse_break_glass,
)
from shared.onboarding.deps import Deps
from shared.state import iso, parse_iso

__all__ = ["TerminationOutcome", "handle_terminated"]


@dataclass(frozen=True, slots=True)
class TerminationOutcome:
    """What was cleaned up: the user, how many TAPs were deleted, whether tracking stopped."""

    status: Literal["cleaned", "not-found", "duplicate", "superseded"]
    user_id: str | None = None
    taps_deleted: int = 0
    tracking_stopped: bool = False


async def handle_terminated(envelope: Envelope, event: HrEvent, deps: Deps) -> TerminationOutcome:
    """Delete the leaver's TAPs and registration record, once per ``envelope.id``: a redelivered
    termination (HR retries, days later perhaps, after a rehire) never touches what came since.

    Raises:
        SafetyViolationError: the event names a break-glass account.
        RetryableError: Graph or storage failed.
    """
    async with once_per_envelope(envelope, deps, doing="applying this termination") as run:
        if run.done:
            return TerminationOutcome("duplicate", user_id=(run.result or {}).get("userId"))
        outcome = await _terminate(envelope, event, deps)
        await run.complete({"userId": outcome.user_id})
        return outcome


async def _terminate(envelope: Envelope, event: HrEvent, deps: Deps) -> TerminationOutcome:
    await record_leaver(event, envelope.id, deps)
    user = await find_employee(event, deps)
    if user is None:
        await deps.audit(
            "hire.terminate", envelope.id, "leaver not in Entra: nothing to clean up", envelope.id
        )
        return TerminationOutcome("not-found")
    refuse_break_glass(user, deps, envelope.id)
    stored = await deps.state.kv.get(REGISTRATION_NAMESPACE, user.id)
    hired_at = (
        parse_iso(stored.value.get("hireEventAt"))
        if stored is not None and isinstance(stored.value, dict)
        else None
    )
    if hired_at is not None and hired_at > event.timestamp:
        # HR hired this person again after this termination (a late or resent delivery): the
        # current hire's TAP and tracking are not this termination's to touch
        await deps.audit(
            "hire.terminate.superseded",
            user.id,
            f"a later hire ({iso(hired_at)}) supersedes this termination ({iso(event.timestamp)})",
            envelope.id,
        )
        return TerminationOutcome("superseded", user_id=user.id)
    deleted = 0
    for method in await deps.graph.list_taps(user.id):
        if await deps.graph.delete_tap(user.id, method.id):
            deleted += 1
            await deps.audit("tap.delete", user.id, "employee terminated", envelope.id, method_id=method.id)
    if stored is not None:
        await deps.state.kv.delete(REGISTRATION_NAMESPACE, user.id)
        await deps.audit("registration.stop", user.id, "employee terminated", envelope.id)
    return TerminationOutcome(
        "cleaned", user_id=user.id, taps_deleted=deleted, tracking_stopped=stored is not None
    )
