"""``employee.hired``: find the user (re-check later while provisioning lags), TAP to the manager,
wave group, registration tracking; exactly once per envelope id.

Progress is checkpointed on the envelope's own claim (``once``: never the TAP value), so a retry
resumes where the last attempt stopped, and the claim that starts the work reads it in the same
round trip. A crash after the TAP was created but before its e-mail was saved is recovered by
creating a fresh TAP (Graph keeps one per user, so the unsent one dies). The e-mail is saved as a
draft whose immutable id is checkpointed before it is sent: a redelivery reads that message and
sends it only if it is still a draft, so exactly one e-mail carries the one live TAP, whatever
crashes where.

A hire's audit entries (group member added, TAP created, TAP e-mailed) are kept in its progress as
the steps happen and written together once the e-mail is out, with ids and times fixed by the
steps, so a retry never writes one twice. Six state round trips per hire: the claim, the leaver
check, the draft checkpoint, registration tracking, the audit entries, the completion.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.alerting import Alert, Severity, raise_alert
from shared.config import NewHires
from shared.envelope import Envelope
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph.account import AccountFacts
from shared.hr.events import HrEvent
from shared.names import HR_EVENTS
from shared.onboarding.common import (
    ONBOARDING_KEY_PREFIX,
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
from shared.onboarding.ports import DirectoryUser, HireFacts
from shared.onboarding.progress import (
    LEGACY_HIRES_NAMESPACE,
    DraftRecord,
    HireProgress,
    PendingAudit,
    TapRecord,
)
from shared.onboarding.tap_mail import TapMail, compose_tap_mail
from shared.rollout.assignment import assign_wave
from shared.rollout.wave_groups import ensure_wave_group
from shared.state import AuditEntry, IdempotencyStore
from shared.state.once import Run

if TYPE_CHECKING:
    from shared.config.waves import Wave
    from shared.graph.tap import IssuedTap
    from shared.rollout.assignment import Assignment

__all__ = ["HireOutcome", "handle_hired", "hire_progress", "recheck_delay", "tap_refusal", "tap_start"]

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
        hire = _Hire(envelope, event, deps, run)
        if run.taken_over and run.progress is None:
            await hire.adopt_legacy_progress()
        try:
            outcome = await _onboard(hire)
        except (Exception, asyncio.CancelledError):
            # Steps taken so far (a group joined, a TAP issued) stay known to the next attempt.
            await run.release(hire.progress.to_dict())
            raise
        if outcome.status == "rechecking":
            await run.release(hire.progress.to_dict())  # the scheduled re-check claims it again
        else:
            await run.complete({"userId": outcome.user_id, "wave": outcome.wave})
        return outcome


def hire_progress(store: IdempotencyStore, envelope_id: str) -> HireProgress | None:
    """Where the hire of ``envelope_id`` stands (None: never started, or done and forgotten; a
    completed hire keeps no progress).

    Raises:
        RetryableError: the store is unavailable.
    """
    record = store.read(f"{ONBOARDING_KEY_PREFIX}{envelope_id}")
    if record is None or record.progress is None:
        return None
    return HireProgress.from_dict(record.progress, first_seen_at=iso(record.started_at))


@dataclass(slots=True)
class _Hire:
    """One attempt at one hire: the envelope, its event, and the progress its claim carries."""

    envelope: Envelope
    event: HrEvent
    deps: Deps
    run: Run
    progress: HireProgress = field(init=False)
    resumed: bool = field(init=False)  # an earlier attempt left progress
    issued: IssuedTap | None = field(default=None, init=False, repr=False)  # this attempt's TAP
    draft_state: Literal["sent", "draft"] | None = field(default=None, init=False)  # a saved draft's

    def __post_init__(self) -> None:
        stored = self.run.progress
        self.resumed = stored is not None
        self.progress = HireProgress.from_dict(stored, first_seen_at=iso(self.deps.clock()))

    async def adopt_legacy_progress(self) -> None:
        """Resume from the record an earlier version kept in state (``hires/<envelope id>``) when
        this attempt takes over a claim from such a worker that died: its draft may have been sent."""
        stored = await self.deps.state.kv.get(LEGACY_HIRES_NAMESPACE, self.envelope.id)
        if stored is not None and isinstance(stored.value, dict):
            self.progress = HireProgress.from_dict(stored.value, first_seen_at=iso(self.deps.clock()))
            self.resumed = True

    async def checkpoint(self) -> None:
        """Store the progress on the claim (before an effect that must not be repeated)."""
        await self.run.checkpoint(self.progress.to_dict())

    def audit_later(
        self,
        action: str,
        target: str,
        reason: str,
        *,
        at: str | None = None,
        entry_id: str | None = None,
        **details: Any,
    ) -> None:
        """Keep an audit entry for a step just taken (now, unless ``at``); ``write_audits`` writes it.
        ``entry_id``: the step's own id when every attempt that records it must record the same."""
        when = at or iso(self.deps.clock())
        self.progress.audits.append(
            PendingAudit(action, target, reason, when, details, entry_id or uuid.uuid4().hex)
        )

    def audit_with_draft(self, action: str, target: str, reason: str, **details: Any) -> None:
        """Keep the entry of a step that goes with the saved draft (the e-mail, the group add sent
        with it): its id and time are fixed by the draft, checkpointed before the step, so every
        attempt that records the step records the very same entry and it is written once. Without
        a draft, an entry of its own."""
        draft = self.progress.draft
        if draft is None:
            self.audit_later(action, target, reason, **details)
            return
        step = f"{self.envelope.id}:{action}:{draft.id}"
        entry_id = hashlib.sha256(step.encode()).hexdigest()[:32]
        self.audit_later(action, target, reason, at=draft.saved_at, entry_id=entry_id, **details)

    async def write_audits(self) -> None:
        """Write the kept entries in one go, each at most once.

        Each entry's id and time were fixed when its step was taken, and kept with the progress
        from the next checkpoint on (the delivery's by the draft itself); ``append_once`` skips
        the ones stored already, so a retry after a lost answer or a crash never writes one twice.
        """
        pending = self.progress.audits
        if not pending:
            return
        entries = [
            AuditEntry(
                ACTOR,
                a.action,
                a.target,
                a.reason,
                correlation_id=self.envelope.id,
                details=a.details,
                at=parse_iso(a.at) or self.deps.clock(),
                id=a.id,
            )
            for a in pending
        ]
        await self.deps.state.audit.append_once(entries)
        self.progress.audits = []

    async def audit_now(self, action: str, target: str, reason: str, **details: Any) -> None:
        """Write an entry for a step just taken, with any still waiting, now."""
        self.audit_later(action, target, reason, **details)
        await self.write_audits()


async def _onboard(hire: _Hire) -> HireOutcome:
    envelope, event, deps, progress = hire.envelope, hire.event, hire.deps, hire.progress
    pending = _pending_recheck(progress, deps)
    if pending is not None:
        # A re-check of this very envelope is already scheduled: this delivery came before it (HR
        # sent the webhook again while we wait for Entra), and the scheduled one does the work.
        log.info("hire re-check already scheduled; this delivery waits for it", extra={"in_seconds": pending})
        return HireOutcome("rechecking", recheck_in_seconds=pending)
    # A first attempt skips this read: the check after the TAP is issued (below) catches a leaver
    # before anything is mailed, and the claim is the only state read a new hire costs.
    if hire.resumed and not progress.mail_sent and await left_since(event, deps):
        await _delete_unsent_tap(hire)
        await hire.audit_now("hire.cancel", envelope.id, "HR terminated the employee before onboarding")
        return HireOutcome("cancelled")
    located = await _find_hire(event, deps, envelope.id)
    if located is None:
        return await _recheck_later(hire)
    user, found = located
    refuse_break_glass(user, deps, envelope.id)
    progress.user_id = user.id
    facts, _ = await facts_for(user, event, deps, groups=found.groups)
    assignment = assign_wave(deps.plan, facts, new_hire=True)
    if assignment.wave is None:
        raise PermanentError(
            "no wave takes this hire; give the plan a catchAll wave", correlation_id=envelope.id
        )
    wave = deps.plan.wave(assignment.wave)
    if not progress.mail_sent and not progress.tap_refused:
        refusal = await tap_refusal(user, deps, account=found.account)
        recipient = None if refusal else await _recipient(envelope, event, user, found.manager, deps)
        if refusal or recipient is None:
            # No TAP on this path: the leaver check (unless this attempt made it above) comes
            # before the first write.
            if not hire.resumed and await left_since(event, deps):
                reason = "HR terminated the employee before onboarding"
                await hire.audit_now("hire.cancel", envelope.id, reason)
                return HireOutcome("cancelled", user_id=user.id)
            await _join_wave_group(hire, user, wave, assignment)
            if not refusal:
                return await _hold_tap(hire, user)
            await _refuse_tap(hire, user, refusal)
        else:
            # The TAP first, then the leaver check (the first read on this path), then the e-mail
            # and the wave group together: a group write that fails is retried from the sent
            # e-mail, so it never costs the hire a second TAP.
            if not await _tap_for_mail(hire, user):
                return HireOutcome("cancelled", user_id=user.id)
            await _deliver_tap(hire, user, recipient, wave, assignment)
    else:
        await _join_wave_group(hire, user, wave, assignment)
    await _track_registration(hire, user)
    await hire.write_audits()
    return HireOutcome("done", user_id=user.id, wave=wave.name)


async def _find_hire(
    event: HrEvent, deps: Deps, correlation_id: str
) -> tuple[DirectoryUser, HireFacts] | None:
    """The hire (``find_employee``) with its groups, account facts and manager: one round trip when
    the event names the UPN (the reads go by it, used only if it is the account found)."""
    data = event.data
    if data.user_principal_name:
        # A UPN the plan lists as break-glass is refused before any read (the found account is
        # checked again by id, whichever way it was found).
        named = DirectoryUser(id="", user_principal_name=data.user_principal_name)
        refuse_break_glass(named, deps, correlation_id)
        return await deps.graph.find_hire(data.employee_id, data.user_principal_name)
    user = await find_employee(event, deps)
    return None if user is None else (user, await deps.graph.hire_facts(user.id))


async def _join_wave_group(hire: _Hire, user: DirectoryUser, wave: Wave, assignment: Assignment) -> None:
    """Add the hire to the wave's group (once: recorded in the progress, and Graph answers "already a
    member" to an attempt that added it before its progress was kept)."""
    progress, deps = hire.progress, hire.deps
    if progress.group_added:
        return
    group_id = await ensure_wave_group(wave, deps, hire.envelope.id, cache=deps.wave_groups)
    try:
        added = await deps.graph.add_member(group_id, user.id)
    except NotFoundError as exc:
        raise _join_failed(hire, wave, exc) from None
    _record_join(hire, user, wave, assignment, group_id, added=added)


def _record_join(
    hire: _Hire, user: DirectoryUser, wave: Wave, assignment: Assignment, group_id: str, *, added: bool
) -> None:
    """The hire is in the wave's group: recorded in the progress, its entry kept when this attempt
    added it.

    Once the hire has a saved draft, its group add goes (or went) to Graph with the e-mail's send,
    and an attempt whose answer was lost may have made it: then "already a member" is that add, and
    is audited too. Its entry's id and time are fixed by the draft, so however many attempts record
    it, it is written once.
    """
    progress = hire.progress
    if added or progress.draft is not None:
        reason = f"new hire assigned to wave {wave.name} ({assignment.reason} {assignment.selector or ''})"
        hire.audit_with_draft("wave.member.add", user.id, reason.strip(), wave=wave.name, group_id=group_id)
    progress.wave, progress.group_id, progress.group_added = wave.name, group_id, True


def _join_failed(hire: _Hire, wave: Wave, error: Exception) -> Exception:
    """The error to raise for a failed group add: a group or user Graph does not find is resolved
    afresh on the retry (the group resolved earlier in this process may have been deleted since; a
    vanished user is found missing by the retry's look-up)."""
    if not isinstance(error, NotFoundError):
        return error
    hire.deps.wave_groups.forget(wave, hire.deps.plan)
    return RetryableError(
        f"wave {wave.name}: the group or the user is gone; resolving again",
        retry_after=5,
        correlation_id=hire.envelope.id,
    )


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


async def _refuse_tap(hire: _Hire, user: DirectoryUser, reasons: list[str]) -> None:
    """No TAP for an account that is not genuinely new: audited, alerted, the rest of onboarding goes on."""
    envelope, event, deps = hire.envelope, hire.event, hire.deps
    hire.progress.tap_refused = reasons
    hire.audit_later("hire.tap.refuse", user.id, "; ".join(reasons), reasons=reasons)
    await hire.checkpoint()
    await hire.write_audits()
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


async def _hold_tap(hire: _Hire, user: DirectoryUser) -> HireOutcome:
    """No manager in Entra and no fallback mailbox: no TAP yet; alerted, re-checked on the
    provisioning schedule (managers are often set after the account)."""
    envelope, event, deps, progress = hire.envelope, hire.event, hire.deps, hire.progress
    if not progress.tap_held_alerted:
        await hire.audit_now(
            "hire.tap.hold", user.id, "Entra records no manager and no fallback mailbox is set"
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
    else:
        await hire.write_audits()  # a group joined on this attempt
    return await _recheck_later(hire, waiting_for="the hire's manager in Entra")


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


async def _tap_for_mail(hire: _Hire, user: DirectoryUser) -> bool:
    """The TAP the e-mail will carry: the one in a saved draft that is still a draft or was sent,
    otherwise a fresh one. False when HR terminated the employee meanwhile (the fresh TAP is deleted
    again, the hire cancelled).

    A fresh TAP is followed by the leaver check: a termination records the leaver before it deletes
    TAPs, so either it deleted this TAP or this check sees the leaver.
    """
    envelope, event, deps, progress = hire.envelope, hire.event, hire.deps, hire.progress
    policy = deps.plan.new_hires
    if progress.draft is not None:
        state = await deps.graph.message_state(policy.delivery.sender_mailbox, progress.draft.id)
        if state in ("sent", "draft"):
            hire.draft_state = state  # its TAP is the live one (sent: delivered already)
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
    hire.issued = issued  # its value lives in memory only, until the draft carries it
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
    hire.audit_later(
        "tap.create",
        user.id,
        "Temporary Access Pass for a new hire",
        method_id=issued.method.id,
        starts_at=iso(starts_at),
        expires_at=iso(expires_at),
    )
    if await left_since(event, deps):
        await _delete_unsent_tap(hire)
        await hire.audit_now("hire.cancel", envelope.id, "HR terminated the employee during onboarding")
        return False
    return True


async def _deliver_tap(
    hire: _Hire, user: DirectoryUser, manager: DirectoryUser, wave: Wave, assignment: Assignment
) -> None:
    """E-mail the TAP ``_tap_for_mail`` settled on to ``manager``, exactly once, and add the hire to
    the wave's group.

    The e-mail is saved as a draft (immutable id, checkpointed) and only then sent, so a redelivery
    can tell a mail Graph already sent (recorded as sent, nothing more) from one it never sent (the
    draft, with the TAP that is still live, is sent now).
    """
    envelope, event, deps, progress = hire.envelope, hire.event, hire.deps, hire.progress
    policy = deps.plan.new_hires
    sender = policy.delivery.sender_mailbox
    if hire.draft_state == "sent":
        _record_delivery(hire, user, manager)
        await _join_wave_group(hire, user, wave, assignment)
        return
    if hire.draft_state == "draft" and progress.draft is not None:
        await _send_and_join(hire, user, manager, progress.draft.id, wave, assignment)
        return
    issued, tap = hire.issued, progress.tap
    if issued is None or tap is None:  # _tap_for_mail issues one on this path: never expected
        raise RetryableError("no TAP was issued for the e-mail; starting over", correlation_id=envelope.id)
    starts_at = parse_iso(tap.starts_at) or deps.clock()
    expires_at = parse_iso(tap.expires_at) or starts_at + timedelta(minutes=policy.tap.lifetime_minutes)
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
    # A crash before the draft id is checkpointed leaves an unsent draft whose TAP the next attempt
    # replaces: it can never work, and it is never sent.
    draft_id = await deps.graph.create_draft(sender, message, tag=envelope.id)
    progress.draft = DraftRecord(draft_id, issued.method.id, saved_at=iso(deps.clock()))
    await hire.checkpoint()
    await _send_and_join(hire, user, manager, draft_id, wave, assignment)


async def _send_and_join(
    hire: _Hire,
    user: DirectoryUser,
    manager: DirectoryUser,
    draft_id: str,
    wave: Wave,
    assignment: Assignment,
) -> None:
    """Send the checkpointed draft and add the hire to the wave's group in one Graph round trip.

    Each write is settled on its own: a group add that failed is retried from the sent e-mail (so
    it never costs the hire a second TAP), and one that happened while the send failed is kept with
    the progress. A wave group that cannot be resolved does not hold the e-mail back: it is sent
    alone, and the group's error raised after it.
    """
    deps, progress = hire.deps, hire.progress
    sender = deps.plan.new_hires.delivery.sender_mailbox
    group_id: str | None = None
    unresolved: Exception | None = None
    if not progress.group_added:
        try:
            group_id = await ensure_wave_group(wave, deps, hire.envelope.id, cache=deps.wave_groups)
        except Exception as exc:
            unresolved = exc
    if group_id is None:  # in the group already, or its group could not be resolved: the e-mail alone
        await deps.graph.send_draft(sender, draft_id)
        _record_delivery(hire, user, manager)
        if unresolved is not None:
            raise unresolved
        return
    outcome = await deps.graph.send_draft_and_add_member(sender, draft_id, group_id, user.id)
    if outcome.sent is None:
        _record_delivery(hire, user, manager)
    joined = outcome.joined
    join_error = _join_failed(hire, wave, joined) if isinstance(joined, Exception) else None
    if not isinstance(joined, Exception):
        _record_join(hire, user, wave, assignment, group_id, added=joined)
    if outcome.sent is not None:
        raise outcome.sent
    if join_error is not None:
        raise join_error


def _record_delivery(hire: _Hire, user: DirectoryUser, manager: DirectoryUser) -> None:
    """The e-mail is out: recorded in the progress, its entry kept for the hire's audit write (the
    completion that follows settles it; a retry before that finds the draft sent)."""
    progress, deps, draft = hire.progress, hire.deps, hire.progress.draft
    progress.mail_sent, progress.mail_sent_at, progress.manager_id = True, iso(deps.clock()), manager.id
    # An attempt that finds the e-mail sent records the very same entry.
    hire.audit_with_draft(
        "tap.deliver",
        user.id,
        "TAP e-mailed to the manager",
        manager_id=manager.id,
        sender=deps.plan.new_hires.delivery.sender_mailbox,
        method_id=progress.tap.method_id if progress.tap is not None else None,
        draft_id=draft.id if draft is not None else None,
        sent_at=progress.mail_sent_at,
    )


async def _delete_unsent_tap(hire: _Hire) -> None:
    """Delete the TAP an earlier step issued but never mailed (the employee left); idempotent, so an
    attempt that failed or died after issuing it is finished by the next delivery."""
    progress = hire.progress
    user_id, method_id = progress.user_id, progress.tap.method_id if progress.tap is not None else None
    if user_id is None or method_id is None:
        return
    if await hire.deps.graph.delete_tap(user_id, method_id):
        hire.audit_later("tap.delete", user_id, "employee terminated during onboarding", method_id=method_id)


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


async def _recheck_later(hire: _Hire, *, waiting_for: str = "the hire in Entra") -> HireOutcome:
    """Schedule the same envelope again with a growing delay, or give up after the budget.

    The message is sent before progress is recorded (by the claim's release): dying in between
    re-sends it on retry, and a duplicate re-check is harmless (the claim and step progress make
    effects happen once).

    Raises:
        NotFoundError: the budget is spent (audited first; the release records it).
    """
    envelope, deps, progress = hire.envelope, hire.deps, hire.progress
    policy = deps.plan.new_hires
    now = deps.clock()
    first_seen = parse_iso(progress.first_seen_at) or now
    attempts = progress.attempts
    budget = timedelta(hours=policy.provisioning_retry.budget_hours)
    elapsed = now - first_seen
    if elapsed >= budget:
        progress.status, progress.gave_up_at = "not-provisioned", iso(now)
        await hire.audit_now(
            "hire.abandon",
            envelope.id,
            f"{waiting_for} never appeared within the budget",
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
    log.info(
        "hire not provisioned yet; re-check scheduled",
        extra={"delay_seconds": delay, "attempt": attempts + 1},
    )
    return HireOutcome("rechecking", recheck_in_seconds=delay)


async def _track_registration(hire: _Hire, user: DirectoryUser) -> None:
    envelope, event, progress = hire.envelope, hire.event, hire.progress
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
    await hire.deps.state.kv.put(REGISTRATION_NAMESPACE, user.id, record)
