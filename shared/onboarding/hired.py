"""``employee.hired``: find the user (re-check later while provisioning lags), wave group, TAP to the
manager, registration tracking; exactly once per envelope id.

Progress is recorded per envelope in KV ``hires`` (never the TAP value), so a retry resumes where
the last attempt stopped. A crash after the TAP was created but before its e-mail was saved is
recovered by creating a fresh TAP (Graph keeps one per user, so the unsent one dies). The e-mail is
saved as a draft whose immutable id is recorded before it is sent: a redelivery reads that message
and sends it only if it is still a draft, so exactly one e-mail carries the one live TAP, whatever
crashes where.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal

from shared.alerting import Alert, Severity, raise_alert
from shared.config import NewHires
from shared.envelope import Envelope
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph.account import AccountFacts
from shared.hr.events import HrEvent
from shared.names import HR_EVENTS
from shared.onboarding.common import (
    REGISTRATION_NAMESPACE,
    facts_for,
    find_employee,
    iso,
    left_since,
    once_per_envelope,
    parse_iso,
    refuse_break_glass,
)
from shared.onboarding.deps import ACTOR, Deps
from shared.onboarding.ports import DirectoryUser
from shared.onboarding.progress import HIRES_NAMESPACE, DraftRecord, HireProgress, TapRecord
from shared.onboarding.tap_mail import TapMail, compose_tap_mail
from shared.rollout.assignment import assign_wave
from shared.rollout.wave_groups import ensure_wave_group

__all__ = ["HIRES_NAMESPACE", "HireOutcome", "handle_hired", "recheck_delay", "tap_refusal", "tap_start"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HireOutcome:
    """What handling the hire did: done (now or before), a later re-check, or cancelled (left since)."""

    status: Literal["done", "duplicate", "rechecking", "cancelled"]
    user_id: str | None = None
    wave: str | None = None
    recheck_in_seconds: float | None = None


async def handle_hired(envelope: Envelope, event: HrEvent, deps: Deps) -> HireOutcome:
    """Onboard the hire in ``event`` once for ``envelope.id``.

    Raises:
        RetryableError: Graph or storage failed, or another worker holds this envelope.
        NotFoundError: the user never appeared within the provisioning budget.
        SafetyViolationError: the event names a break-glass account.
        PermanentError: no manager to deliver the TAP to, or the wave's group is misconfigured.
    """
    async with once_per_envelope(envelope, deps, doing="onboarding this hire") as run:
        if run.done:
            return HireOutcome("duplicate", user_id=run.result.get("userId"), wave=run.result.get("wave"))
        outcome = await _onboard(envelope, event, deps)
        if outcome.status == "rechecking":
            await run.release()  # the scheduled re-check claims it again
        else:
            await run.complete({"userId": outcome.user_id, "wave": outcome.wave})
        return outcome


async def _onboard(envelope: Envelope, event: HrEvent, deps: Deps) -> HireOutcome:
    progress = await _load_progress(envelope.id, deps)
    pending = _pending_recheck(progress, deps)
    if pending is not None:
        # A re-check of this very envelope is already scheduled: this delivery came before it (HR
        # sent the webhook again while we wait for Entra), and the scheduled one does the work.
        log.info("hire re-check already scheduled; this delivery waits for it", extra={"in_seconds": pending})
        return HireOutcome("rechecking", recheck_in_seconds=pending)
    if not progress.mail_sent and await left_since(event, deps):
        await _delete_unsent_tap(envelope, progress, deps)
        await deps.audit(
            "hire.cancel", envelope.id, "HR terminated the employee before onboarding", envelope.id
        )
        return HireOutcome("cancelled")
    user = await find_employee(event, deps)
    if user is None:
        return await _recheck_later(envelope, progress, deps)
    refuse_break_glass(user, deps, envelope.id)
    progress.user_id = user.id
    found = await deps.graph.hire_facts(user.id)  # groups, account facts, manager: one round trip
    facts, _ = await facts_for(user, event, deps, groups=found.groups)
    assignment = assign_wave(deps.plan, facts, new_hire=True)
    if assignment.wave is None:
        raise PermanentError(
            "no wave takes this hire; give the plan a catchAll wave", correlation_id=envelope.id
        )
    wave = deps.plan.wave(assignment.wave)
    if not progress.group_added:
        group_id = await ensure_wave_group(wave, deps, envelope.id, cache=deps.wave_groups)
        try:
            added = await deps.graph.add_member(group_id, user.id)
        except NotFoundError:
            # The group resolved earlier in this process may have been deleted since: resolve it
            # afresh on the retry (a vanished user is found missing by the retry's look-up).
            deps.wave_groups.forget(wave, deps.plan)
            raise RetryableError(
                f"wave {wave.name}: the group or the user is gone; resolving again",
                retry_after=5,
                correlation_id=envelope.id,
            ) from None
        if added:
            reason = (
                f"new hire assigned to wave {wave.name} ({assignment.reason} {assignment.selector or ''})"
            )
            await deps.audit(
                "wave.member.add", user.id, reason.strip(), envelope.id, wave=wave.name, group_id=group_id
            )
        progress.wave, progress.group_id, progress.group_added = wave.name, group_id, True
        if progress.mail_sent or progress.tap_refused:
            await _save_progress(envelope.id, progress, deps)
        # else the TAP step's next save records it: a retry before that adds again, and Graph
        # answers "already a member" (no second audit entry).
    if not progress.mail_sent and not progress.tap_refused:
        refusal = await tap_refusal(user, deps, account=found.account)
        if refusal:
            await _refuse_tap(envelope, event, user, refusal, progress, deps)
        else:
            recipient = await _recipient(envelope, event, user, found.manager, deps)
            if recipient is None:
                return await _hold_tap(envelope, event, user, progress, deps)
            if not await _issue_and_deliver_tap(envelope, event, user, recipient, progress, deps):
                return HireOutcome("cancelled", user_id=user.id, wave=wave.name)
    await _track_registration(envelope, event, user, progress, deps)
    return HireOutcome("done", user_id=user.id, wave=wave.name)


async def tap_refusal(user: DirectoryUser, deps: Deps, *, account: AccountFacts | None = None) -> list[str]:
    """Why this account must not get a TAP (empty: it is genuinely new and unprotected); from
    ``account`` when the caller read the facts already.

    A TAP signs in as the account: only an account Entra created recently, with no strong method
    and no directory role, can be handed to a newcomer; anything else already belongs to someone.

    Raises:
        RetryableError / PermanentError: Graph failed or refused a read.
    """
    facts = account if account is not None else await deps.graph.account_facts(user.id)
    now = deps.clock()
    reasons: list[str] = []
    limit = timedelta(days=deps.plan.new_hires.max_account_age_days)
    if facts.created_at is None:
        reasons.append("Entra reports no creation time for the account")
    elif now - facts.created_at > limit:
        days = (now - facts.created_at).days
        reasons.append(f"the account was created {days} days ago (newHires.maxAccountAgeDays: {limit.days})")
    if facts.strong_methods:
        kinds = ", ".join(sorted({m.rsplit(".", 1)[-1] for m in facts.strong_methods}))
        reasons.append(f"the account already has strong authentication methods ({kinds})")
    if facts.roles:
        reasons.append(f"the account holds directory roles ({', '.join(sorted(facts.roles))})")
    return reasons


async def _refuse_tap(
    envelope: Envelope,
    event: HrEvent,
    user: DirectoryUser,
    reasons: list[str],
    progress: HireProgress,
    deps: Deps,
) -> None:
    """No TAP for an account that is not genuinely new: audited, alerted, the rest of onboarding goes on."""
    progress.tap_refused = reasons
    await _save_progress(envelope.id, progress, deps)
    await deps.audit("hire.tap.refuse", user.id, "; ".join(reasons), envelope.id, reasons=reasons)
    await _alert(
        deps,
        envelope,
        event,
        "HireRefusedExistingAccount",
        "high",
        f"no Temporary Access Pass for an existing account: {'; '.join(reasons)}",
        user_id=user.id,
    )


async def _recipient(
    envelope: Envelope, event: HrEvent, user: DirectoryUser, manager: DirectoryUser | None, deps: Deps
) -> DirectoryUser | None:
    """Who receives the TAP: ``manager`` (the one Entra records), else
    ``newHires.delivery.fallbackMailbox``, else None (held). The event's manager is only a
    cross-check: a different one is alerted."""
    named_upn = event.data.manager_user_principal_name
    same_upn = (
        manager is not None
        and manager.user_principal_name is not None
        and named_upn is not None
        and manager.user_principal_name.casefold() == named_upn.casefold()
    )
    if named_upn and not same_upn:  # a UPN is unique in the tenant: the same one is the same user
        named = await deps.graph.find_user(named_upn)
        if manager is None or named is None or named.id != manager.id:
            await _alert(
                deps,
                envelope,
                event,
                "HireManagerMismatch",
                "medium",
                "HR names another manager than Entra records; the TAP goes only to Entra's manager "
                "(or the fallback mailbox)",
                user_id=user.id,
                entra_manager_id=manager.id if manager else None,
                hr_manager_id=named.id if named else None,
            )
    if manager is not None and manager.address and manager.id != user.id:
        return manager
    fallback = deps.plan.new_hires.delivery.fallback_mailbox
    if fallback:
        return DirectoryUser(id=f"mailbox:{fallback}", user_principal_name=fallback, display_name=None)
    return None


async def _hold_tap(
    envelope: Envelope, event: HrEvent, user: DirectoryUser, progress: HireProgress, deps: Deps
) -> HireOutcome:
    """No manager in Entra and no fallback mailbox: no TAP yet; alerted, re-checked on the
    provisioning schedule (managers are often set after the account)."""
    if not progress.tap_held_alerted:
        await deps.audit(
            "hire.tap.hold", user.id, "Entra records no manager and no fallback mailbox is set", envelope.id
        )
        await _alert(
            deps,
            envelope,
            event,
            "HireTapHeld",
            "high",
            "Temporary Access Pass held: Entra records no manager for the hire and "
            "newHires.delivery.fallbackMailbox is not set",
            user_id=user.id,
        )
        progress.tap_held_alerted = True
    return await _recheck_later(envelope, progress, deps, waiting_for="the hire's manager in Entra")


async def _alert(
    deps: Deps,
    envelope: Envelope,
    event: HrEvent,
    name: str,
    severity: Severity,
    summary: str,
    **details: Any,
) -> None:
    alert = Alert(
        key=f"onboarding:{envelope.id}:{name}",
        severity=severity,
        summary=f"{name}: {summary}",
        source=ACTOR,
        labels={"alertname": name, "severity": severity, "eventType": envelope.type},
        details={"envelopeId": envelope.id, "employeeId": event.data.employee_id, **details},
        occurred_at=deps.clock(),
    )
    await raise_alert(deps.queues, alert)


async def _issue_and_deliver_tap(
    envelope: Envelope,
    event: HrEvent,
    user: DirectoryUser,
    manager: DirectoryUser,
    progress: HireProgress,
    deps: Deps,
) -> bool:
    """Issue the TAP and e-mail it to ``manager`` exactly once; False when HR terminated the employee
    meanwhile (the TAP is deleted again and nothing is sent).

    The e-mail is saved as a draft (immutable id, recorded) and only then sent, so a redelivery can
    tell a mail Graph already sent (recorded as sent, nothing more) from one it never sent (the
    draft, with the TAP that is still live, is sent now).
    """
    policy = deps.plan.new_hires
    sender = policy.delivery.sender_mailbox
    draft = progress.draft
    if draft is not None:
        state = await deps.graph.message_state(sender, draft.id)
        if state == "sent":
            await _record_delivery(envelope, user, manager, progress, deps)
            return True
        if state == "draft":
            if await left_since(event, deps):
                await _delete_unsent_tap(envelope, progress, deps)  # the draft's TAP dies with it
                return False
            await deps.graph.send_draft(sender, draft.id)
            await _record_delivery(envelope, user, manager, progress, deps)
            return True
        progress.draft = None  # gone (deleted by someone): start over with a fresh TAP
    now = deps.clock()
    start = tap_start(event.data.hire_date, policy, now)
    issued = await deps.graph.create_tap(
        user.id,
        lifetime_minutes=policy.tap.lifetime_minutes,
        is_usable_once=policy.tap.is_usable_once,
        start_at=start,
    )
    starts_at = start or now
    expires_at = starts_at + timedelta(minutes=policy.tap.lifetime_minutes)
    progress.tap = TapRecord(
        method_id=issued.method.id,
        created_at=iso(issued.method.created_at or now),
        starts_at=iso(starts_at),
        expires_at=iso(expires_at),
        is_usable_once=policy.tap.is_usable_once,
    )
    progress.mail_attempts += 1
    await _save_progress(envelope.id, progress, deps)
    await deps.audit(
        "tap.create",
        user.id,
        "Temporary Access Pass for a new hire",
        envelope.id,
        method_id=issued.method.id,
        starts_at=iso(starts_at),
        expires_at=iso(expires_at),
    )
    # A termination records the leaver before it deletes TAPs: either it saw this TAP, or this
    # check sees the leaver. Without it, a termination racing the hire could leave a live TAP.
    if await left_since(event, deps):
        await _delete_unsent_tap(envelope, progress, deps)
        await deps.audit(
            "hire.cancel", envelope.id, "HR terminated the employee during onboarding", envelope.id
        )
        return False
    message = compose_tap_mail(
        TapMail(
            hire_name=event.data.display_name or user.display_name or user.user_principal_name or user.id,
            hire_upn=user.user_principal_name or event.data.user_principal_name or user.id,
            manager_name=manager.display_name or manager.address or "there",
            manager_address=str(manager.address),
            starts_at=starts_at,
            expires_at=expires_at,
            usable_once=policy.tap.is_usable_once,
            subject=policy.delivery.subject,
            tap=issued.value,
            cc=(policy.delivery.cc_mailbox,) if policy.delivery.cc_mailbox else (),
        )
    )
    # A crash before the draft id is recorded leaves an unsent draft whose TAP the next attempt
    # replaces: it can never work, and it is never sent.
    draft_id = await deps.graph.create_draft(sender, message, tag=envelope.id)
    progress.draft = DraftRecord(draft_id, issued.method.id)
    await _save_progress(envelope.id, progress, deps)
    await deps.graph.send_draft(sender, draft_id)
    await _record_delivery(envelope, user, manager, progress, deps)
    return True


async def _record_delivery(
    envelope: Envelope, user: DirectoryUser, manager: DirectoryUser, progress: HireProgress, deps: Deps
) -> None:
    progress.mail_sent, progress.mail_sent_at, progress.manager_id = True, iso(deps.clock()), manager.id
    await _save_progress(envelope.id, progress, deps)
    await deps.audit(
        "tap.deliver",
        user.id,
        "TAP e-mailed to the manager",
        envelope.id,
        manager_id=manager.id,
        sender=deps.plan.new_hires.delivery.sender_mailbox,
        method_id=progress.tap.method_id if progress.tap is not None else None,
        draft_id=progress.draft.id if progress.draft is not None else None,
    )


async def _delete_unsent_tap(envelope: Envelope, progress: HireProgress, deps: Deps) -> None:
    """Delete the TAP an earlier step issued but never mailed (the employee left); idempotent, so an
    attempt that failed or died after issuing it is finished by the next delivery."""
    user_id, method_id = progress.user_id, progress.tap.method_id if progress.tap is not None else None
    if user_id is None or method_id is None:
        return
    if await deps.graph.delete_tap(user_id, method_id):
        await deps.audit(
            "tap.delete", user_id, "employee terminated during onboarding", envelope.id, method_id=method_id
        )


def tap_start(hire_date: date | None, policy: NewHires, now: datetime) -> datetime | None:
    """When the TAP becomes usable: 00:00 UTC on a future hire date, else None (now)."""
    if policy.tap.start_at != "hireDate" or hire_date is None:
        return None
    start = datetime.combine(hire_date, time(0, 0), tzinfo=UTC)
    return start if start > now else None


def recheck_delay(attempts: int, policy: NewHires, remaining: timedelta) -> float:
    """Seconds until the next lookup: initial * factor**attempts, capped by the max and the budget left."""
    retry = policy.provisioning_retry
    delay = min(retry.initial_delay_seconds * retry.backoff_factor**attempts, retry.max_delay_seconds)
    return max(1.0, min(delay, remaining.total_seconds()))


_RECHECK_EARLY: Final = timedelta(seconds=2)  # clock skew between instances; queues never deliver early


def _pending_recheck(progress: HireProgress, deps: Deps) -> float | None:
    """Seconds until the re-check already scheduled for this envelope, when this delivery is early
    for it (None: no re-check pending, or it is this one)."""
    due = parse_iso(progress.next_check_at)
    if due is None or progress.status == "not-provisioned":
        return None
    early = due - deps.clock()
    return early.total_seconds() if early > _RECHECK_EARLY else None


async def _recheck_later(
    envelope: Envelope, progress: HireProgress, deps: Deps, *, waiting_for: str = "the hire in Entra"
) -> HireOutcome:
    """Schedule the same envelope again with a growing delay, or give up after the budget.

    The message is sent before progress is recorded: dying in between re-sends it on retry, and
    a duplicate re-check is harmless (the claim and step progress make effects happen once).

    Raises:
        NotFoundError: the budget is spent (recorded and audited first).
    """
    policy = deps.plan.new_hires
    now = deps.clock()
    first_seen = parse_iso(progress.first_seen_at) or now
    attempts = progress.attempts
    budget = timedelta(hours=policy.provisioning_retry.budget_hours)
    elapsed = now - first_seen
    if elapsed >= budget:
        progress.status, progress.gave_up_at = "not-provisioned", iso(now)
        await _save_progress(envelope.id, progress, deps)
        await deps.audit(
            "hire.abandon",
            envelope.id,
            f"{waiting_for} never appeared within the budget",
            envelope.id,
            attempts=attempts,
            first_seen_at=iso(first_seen),
        )
        hours = elapsed.total_seconds() / 3600
        raise NotFoundError(
            f"{waiting_for}: not found after {attempts + 1} lookups over {hours:.2f} h "
            "(provisioning budget spent)",
            correlation_id=envelope.id,
            attempts=attempts + 1,
        )
    delay = recheck_delay(attempts, policy, budget - elapsed)
    await deps.queues.send(HR_EVENTS, envelope, delay=delay)
    progress.attempts += 1
    progress.last_check_at, progress.next_check_at = iso(now), iso(now + timedelta(seconds=delay))
    await _save_progress(envelope.id, progress, deps)
    log.info(
        "hire not provisioned yet; re-check scheduled",
        extra={"delay_seconds": delay, "attempt": attempts + 1},
    )
    return HireOutcome("rechecking", recheck_in_seconds=delay)


async def _track_registration(
    envelope: Envelope, event: HrEvent, user: DirectoryUser, progress: HireProgress, deps: Deps
) -> None:
    tap = progress.tap
    record = {
        "wave": progress.wave,
        "hireDate": event.data.hire_date.isoformat() if event.data.hire_date else None,
        "tapIssuedAt": tap.created_at if tap is not None else None,
        "tapStartsAt": tap.starts_at if tap is not None else None,
        "tapExpiresAt": tap.expires_at if tap is not None else None,
        "status": "pending",
        "envelopeId": envelope.id,
        "hireEventAt": iso(event.timestamp),  # a termination older than this is not this hire's
    }
    await deps.state.kv.put(REGISTRATION_NAMESPACE, user.id, record)


async def _load_progress(envelope_id: str, deps: Deps) -> HireProgress:
    stored = await deps.state.kv.get(HIRES_NAMESPACE, envelope_id)
    return HireProgress.from_dict(
        stored.value if stored is not None else None, first_seen_at=iso(deps.clock())
    )


async def _save_progress(envelope_id: str, progress: HireProgress, deps: Deps) -> None:
    await deps.state.kv.put(HIRES_NAMESPACE, envelope_id, progress.to_dict())
