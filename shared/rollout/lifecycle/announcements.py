"""Announcements: before a wave moves to report-only, and again before it is enforced, each member
is told what changes, from when, how to register Microsoft Authenticator and whom to ask.

Exactly once per member and stage, whatever the redeliveries, concurrent ticks or crashes
(docs/waves.md, 'Announcements'):

- the idempotency key ``announce:<wave>:<stage>:<user id>`` (400 days) is claimed before anything
  is written; another holder means "skip, the next run sees it";
- the message is saved as a draft in the sender mailbox and its immutable id recorded in the
  wave's ledger (KV ``announcements-<wave>``/``<stage>:<user id>``) **before** it is sent; the
  ledger then records it sent, and the claim is completed;
- a run that finds a recorded draft (its predecessor died, or the send failed without an answer)
  asks Graph whether that message was sent: if so it only records it, else it sends that same
  draft. So a crash between the send and its record never sends a second e-mail; a crash before
  the draft id is recorded leaves an unsent draft behind, never a sent one.

Sending takes tokens from the sender mailbox's budget (``mail_budget``) before each batch and
stops when the run's time is up; the members still waiting are sent on the next run. Each batch
is audited (``wave.announce``, counts only). Break-glass accounts are never announced to.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from shared.config.communications import Stage, StageTemplate
from shared.config.plan import RolloutPlan
from shared.config.waves import Wave
from shared.errors import PermanentError, WaveGuardError
from shared.graph.mail import MailMessage, MessageState
from shared.rollout.lifecycle.gates import AnnouncementProgress
from shared.rollout.lifecycle.mail_budget import take_mail_budget
from shared.rollout.wave_state import WaveState
from shared.state import AsyncStores, AuditEntry, ConcurrencyError
from shared.state.once import once

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "ANNOUNCEMENTS_NAMESPACE",
    "AnnounceReport",
    "AnnouncementMail",
    "Announcer",
    "GraphAnnouncementMail",
    "Recipient",
    "Snapshot",
    "announce_key",
    "communications_enabled",
    "format_date",
    "ledger_namespace",
    "render_announcement",
    "stage_for",
]

log = logging.getLogger(__name__)

# KV namespace; key "<wave>:<stage>"; value {"startedAt", "date"}: when the stage's first batch went
# out and the day every message of the stage names as {date} (startedAt + announcedDaysBefore).
ANNOUNCEMENTS_NAMESPACE: Final = "announcements"
CLAIM_TTL: Final = timedelta(days=400)
IN_PROGRESS_EXPIRY: Final = timedelta(minutes=15)
# Outlook allows 4 concurrent requests per mailbox.
SEND_CONCURRENCY: Final = 4
AUDIT_ACTION: Final = "wave.announce"
_USER_TYPE: Final = "#microsoft.graph.user"
# What Exchange answers for an address it cannot deliver to: that member's problem, not the run's.
_RECIPIENT_ERRORS: Final = frozenset({"ErrorInvalidRecipients"})


def ledger_namespace(wave: str) -> str:
    """KV namespace of a wave's announcement ledger; key ``<stage>:<user id>``; value
    ``{"status": "drafted"|"sent"|"undeliverable", "draftId", "at"}``."""
    return f"announcements-{wave}"


def announce_key(wave: str, stage: Stage, user_id: str) -> str:
    """The idempotency key of one member's announcement of one stage."""
    return f"announce:{wave}:{stage}:{user_id}"


def stage_for(state: WaveState) -> Stage | None:
    """The announcement a wave in ``state`` sends: the one before its next move."""
    return {WaveState.REGISTERING: "reportOnly", WaveState.REPORT_ONLY: "enforce"}.get(state)  # type: ignore[return-value]


def communications_enabled(plan: RolloutPlan, wave: Wave) -> bool:
    """Whether ``wave`` sends announcements (its own ``communications.enabled``, else the plan's)."""
    own = wave.communications.enabled
    return plan.communications.enabled if own is None else own


def format_date(day: date) -> str:
    """``Monday 9 March 2026``: unambiguous in every English locale."""
    return f"{day:%A} {day.day} {day:%B %Y}"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member as the directory lists them."""

    id: str
    display_name: str | None
    mail: str | None
    upn: str | None = None


def _template(plan: RolloutPlan, wave: Wave, stage: Stage) -> StageTemplate:
    return wave.communications.templates.of(stage) or plan.communications.templates.of(stage)


def render_announcement(
    plan: RolloutPlan, wave: Wave, stage: Stage, recipient: Recipient, day: date
) -> MailMessage:
    """The stage's message for ``recipient``: the wave's template (else the plan's) with every
    placeholder filled; in an HTML body each value is escaped, in the subject line breaks removed.

    Raises:
        ValueError: the recipient has no mailbox.
    """
    if not recipient.mail:
        raise ValueError("the recipient has no mailbox")
    template = _template(plan, wave, stage)
    values = {
        "displayName": recipient.display_name or recipient.upn or recipient.mail,
        "wave": wave.name,
        "date": format_date(day),
        "registerUrl": plan.communications.register_url,
        "contact": wave.communications.contact or plan.communications.contact,
    }
    subject_values = {k: " ".join(v.split()) for k, v in values.items()}
    body_values = (
        {k: html.escape(v, quote=True) for k, v in values.items()} if template.format == "html" else values
    )
    return MailMessage(
        subject=template.subject.format_map(subject_values),
        body=template.body.format_map(body_values),
        to=[recipient.mail],
        content_type=template.format,
    )


class AnnouncementMail(Protocol):
    """The directory and the sender mailbox (Graph in production, a fake in unit tests)."""

    async def recipients(self, wave: str) -> list[Recipient]:
        """The members of the wave's group with their display name and mailbox."""
        ...

    async def create_draft(self, message: MailMessage, *, tag: str) -> str:
        """Save ``message`` as a draft in the sender mailbox; its immutable id."""
        ...

    async def message_state(self, message_id: str) -> MessageState | None:
        """``draft``, ``sent``, or None when the message is gone."""
        ...

    async def send_draft(self, message_id: str) -> None:
        """Send a saved draft."""
        ...


@dataclass(slots=True)
class Snapshot:
    """One read of a wave's stage: its members, its ledger and its summary."""

    wave: Wave
    stage: Stage
    members: list[Recipient]  # break-glass accounts left out
    ledger: dict[str, dict[str, Any]]  # user id -> ledger row
    summary: dict[str, Any]
    break_glass: int = 0

    def sent_at(self, user_id: str) -> datetime | None:
        row = self.ledger.get(user_id)
        if row is None or row.get("status") != "sent":
            return None
        try:
            return datetime.fromisoformat(str(row.get("at")))
        except ValueError:
            return None

    @property
    def with_mailbox(self) -> list[Recipient]:
        """Members who can be told: a mailbox Exchange has not refused for this stage."""
        return [
            m for m in self.members if m.mail and self.ledger.get(m.id, {}).get("status") != "undeliverable"
        ]

    @property
    def pending(self) -> list[Recipient]:
        """Members with a mailbox the stage has not reached yet, in id order."""
        return sorted((m for m in self.with_mailbox if self.sent_at(m.id) is None), key=lambda m: m.id)

    def progress(self, now: datetime) -> AnnouncementProgress:
        """What the ``announced`` gate reads."""
        days = self.wave.gates.announced_days_before or 0
        cutoff = now - timedelta(days=days)
        told = [self.sent_at(m.id) for m in self.with_mailbox]
        return AnnouncementProgress(
            stage=self.stage,
            with_mailbox=len(told),
            told=sum(1 for t in told if t is not None),
            told_before=sum(1 for t in told if t is not None and t <= cutoff),
            no_mailbox=len(self.members) - len(told),
        )


@dataclass(slots=True)
class Preview:
    """The message one sample member would get."""

    to: str
    subject: str
    body: str
    format: str

    def to_dict(self) -> dict[str, str]:
        return {"to": self.to, "subject": self.subject, "body": self.body, "format": self.format}


@dataclass(slots=True)
class AnnounceReport:
    """One announcement run of one wave and stage (counts only: no personal content)."""

    wave: str
    stage: Stage
    dry_run: bool
    members: int = 0
    to_send: int = 0
    already_sent: int = 0
    no_mailbox: int = 0
    break_glass: int = 0
    sent: int = 0
    recovered: int = 0  # a previous run's draft found sent: recorded, not sent again
    busy: int = 0
    failed: int = 0
    undeliverable: int = 0  # Exchange refused the member's address: recorded, not retried
    batches: int = 0
    remaining: int = 0
    stopped: str = ""
    date: str | None = None
    error: str | None = None
    preview: Preview | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "stage": self.stage,
            "dryRun": self.dry_run,
            "members": self.members,
            "toSend": self.to_send,
            "alreadySent": self.already_sent,
            "noMailbox": self.no_mailbox,
            "breakGlass": self.break_glass,
            "sent": self.sent,
            "recovered": self.recovered,
            "busy": self.busy,
            "failed": self.failed,
            "undeliverable": self.undeliverable,
            "batches": self.batches,
            "remaining": self.remaining,
            "stopped": self.stopped or None,
            "date": self.date,
            "error": self.error,
            "preview": self.preview.to_dict() if self.preview else None,
        }


@dataclass(slots=True)
class _Tally:
    sent: int = 0
    recovered: int = 0
    already: int = 0
    busy: int = 0
    failed: int = 0
    undeliverable: int = 0
    errors: list[str] = field(default_factory=list)
    permanent: str | None = None


class Announcer:
    """Reads a wave's announcement progress and sends what is due, within the mail budget."""

    def __init__(
        self,
        plan: RolloutPlan,
        stores: AsyncStores,
        mail: AnnouncementMail,
        *,
        sender: str,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.plan = plan
        self.stores = stores
        self._mail = mail
        self.sender = sender
        self._clock = clock
        self._sleep = sleep

    async def snapshot(self, wave: Wave, stage: Stage) -> Snapshot:
        """Read the wave's members (one paged Graph read), its ledger of the stage (one range query)
        and the stage's summary.

        Raises:
            RetryableError / PermanentError: Graph or the store failed.
        """
        members, guarded = [], 0
        for member in await self._mail.recipients(wave.name):
            if self.plan.break_glass.is_break_glass(user_id=member.id, upn=member.upn):
                guarded += 1  # never a wave member by design; never announced to either
                continue
            members.append(member)
        rows = await self.stores.kv.items(
            ledger_namespace(wave.name), start=f"{stage}:", stop=f"{stage};", limit=1_000_000
        )
        ledger = {
            key.split(":", 1)[1]: value for key, value in rows if isinstance(value, dict) and ":" in key
        }
        stored = await self.stores.kv.get(ANNOUNCEMENTS_NAMESPACE, f"{wave.name}:{stage}")
        summary = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        return Snapshot(wave, stage, members, ledger, summary, guarded)

    async def run(
        self,
        wave: Wave,
        stage: Stage,
        *,
        actor: str,
        correlation_id: str,
        dry_run: bool = False,
        snapshot: Snapshot | None = None,
        deadline: datetime | None = None,
    ) -> AnnounceReport:
        """Send the stage's announcement to every member still waiting for it, batch by batch
        within the mail budget, until done or the run's time (``budget.maxSecondsPerRun``, or
        ``deadline``) is up; with ``dry_run`` only count and render a preview.

        Raises:
            RetryableError: the store (or Graph's member read) failed; per-member send failures
                are counted instead.
        """
        snap = snapshot if snapshot is not None else await self.snapshot(wave, stage)
        pending = snap.pending
        report = AnnounceReport(
            wave.name,
            stage,
            dry_run,
            members=len(snap.members),
            to_send=len(pending),
            already_sent=len(snap.with_mailbox) - len(pending),
            no_mailbox=len(snap.members) - len(snap.with_mailbox),
            break_glass=snap.break_glass,
            remaining=len(pending),
        )
        now = self._clock()
        day = self._date(snap, now)
        report.date = day.isoformat()
        if dry_run:
            samples = pending or snap.with_mailbox
            if samples:
                sample = samples[0]
                message = render_announcement(self.plan, wave, stage, sample, day)
                report.preview = Preview(
                    str(sample.mail), message.subject, message.body, message.content_type
                )
            return report
        if not pending:
            return report
        day = await self._start(snap, now)
        report.date = day.isoformat()
        budget = self.plan.communications.budget
        end = deadline or now + timedelta(seconds=budget.max_seconds_per_run)
        queue = list(pending)
        while queue:
            now = self._clock()
            grant = await take_mail_budget(
                self.stores.kv, self.sender, budget, min(len(queue), budget.per_minute), now=now
            )
            if grant.granted == 0:
                if grant.day_exhausted or now + timedelta(seconds=grant.wait_seconds) > end:
                    report.stopped = "day budget spent" if grant.day_exhausted else "time"
                    break
                await self._sleep(grant.wait_seconds)
                continue
            batch, queue = queue[: grant.granted], queue[grant.granted :]
            tally = await self._send_batch(snap, batch, day)
            report.batches += 1
            report.sent += tally.sent
            report.recovered += tally.recovered
            report.already_sent += tally.already
            report.busy += tally.busy
            report.failed += tally.failed
            report.undeliverable += tally.undeliverable
            await self._audit(snap, report, tally, actor=actor, correlation_id=correlation_id)
            if tally.permanent is not None:
                report.stopped, report.error = "refused", tally.permanent
                break
            if tally.errors:
                report.error = tally.errors[-1]
            if queue and self._clock() >= end:
                report.stopped = "time"
                break
        report.remaining = len(queue) + report.busy + report.failed
        report.to_send = len(pending)
        return report

    def _date(self, snap: Snapshot, now: datetime) -> date:
        """The stage's {date}: the one fixed by its first batch (startedAt + announcedDaysBefore),
        today for a member told after that day has passed."""
        days = snap.wave.gates.announced_days_before or 0
        stored = snap.summary.get("date")
        try:
            fixed = date.fromisoformat(str(stored)) if stored else (now + timedelta(days=days)).date()
        except ValueError:
            fixed = (now + timedelta(days=days)).date()
        return max(fixed, now.date())

    async def _start(self, snap: Snapshot, now: datetime) -> date:
        """Fix the stage's start and {date} before its first batch (the first writer wins)."""
        if not snap.summary.get("date"):
            days = snap.wave.gates.announced_days_before or 0
            value = {"startedAt": now.isoformat(), "date": (now + timedelta(days=days)).date().isoformat()}
            key = f"{snap.wave.name}:{snap.stage}"
            try:
                await self.stores.kv.put(ANNOUNCEMENTS_NAMESPACE, key, value, if_absent=True)
                snap.summary = value
            except ConcurrencyError:
                stored = await self.stores.kv.get(ANNOUNCEMENTS_NAMESPACE, key)
                snap.summary = (
                    stored.value if stored is not None and isinstance(stored.value, dict) else value
                )
        return self._date(snap, now)

    async def _send_batch(self, snap: Snapshot, batch: Sequence[Recipient], day: date) -> _Tally:
        tally = _Tally()
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(member: Recipient) -> None:
            async with gate:
                try:
                    outcome = await self._deliver(snap, member, day)
                except PermanentError as exc:
                    tally.failed += 1
                    tally.permanent = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning(
                        "announcement refused", extra={"wave": snap.wave.name, "error": type(exc).__name__}
                    )
                    return
                except WaveGuardError as exc:
                    tally.failed += 1
                    tally.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    log.warning(
                        "announcement failed", extra={"wave": snap.wave.name, "error": type(exc).__name__}
                    )
                    return
                setattr(tally, outcome, getattr(tally, outcome) + 1)

        await asyncio.gather(*(one(m) for m in batch))
        return tally

    async def _deliver(self, snap: Snapshot, member: Recipient, day: date) -> str:
        """Announce the stage to one member, exactly once; the outcome's counter name.

        Raises:
            RetryableError / PermanentError: Graph or the store failed (the claim is released; a
                recorded draft is checked, never re-sent blindly, by the next attempt).
        """
        wave, stage = snap.wave.name, snap.stage
        namespace, row_key = ledger_namespace(wave), f"{stage}:{member.id}"
        async with once(
            self.stores.idempotency,
            announce_key(wave, stage, member.id),
            ttl=CLAIM_TTL,
            in_progress_expiry=IN_PROGRESS_EXPIRY,
            when_busy="skip",
        ) as run:
            if run.skipped:
                return "busy"
            if run.done:
                if "undeliverable" in run.result:
                    if snap.ledger.get(member.id, {}).get("status") != "undeliverable":
                        at = str(run.result.get("at") or self._clock().isoformat())
                        await self._record(namespace, row_key, "undeliverable", None, at)
                    return "undeliverable"
                if snap.sent_at(member.id) is None:  # the ledger lost it (reset): the claim knows
                    at = str(run.result.get("sentAt") or self._clock().isoformat())
                    await self._record(namespace, row_key, "sent", run.result.get("draftId"), at)
                return "already"
            stored = await self.stores.kv.get(namespace, row_key)
            row = stored.value if stored is not None and isinstance(stored.value, dict) else {}
            if row.get("status") == "sent":
                await run.complete({"sentAt": row.get("at"), "draftId": row.get("draftId")}, ttl=CLAIM_TTL)
                return "already"
            draft_id = str(row["draftId"]) if row.get("status") == "drafted" and row.get("draftId") else None
            if draft_id is not None:
                state = await self._mail.message_state(draft_id)
                if state == "sent":
                    at = self._clock().isoformat()
                    await self._record(namespace, row_key, "sent", draft_id, at)
                    await run.complete({"sentAt": at, "draftId": draft_id}, ttl=CLAIM_TTL)
                    return "recovered"
                if state is None:
                    draft_id = None  # deleted by someone: start over
            try:
                if draft_id is None:
                    message = render_announcement(self.plan, snap.wave, stage, member, day)
                    draft_id = await self._mail.create_draft(message, tag=run.key)
                    await self._record(namespace, row_key, "drafted", draft_id, self._clock().isoformat())
                await self._mail.send_draft(draft_id)
            except PermanentError as exc:
                if exc.context.get("code") not in _RECIPIENT_ERRORS:
                    raise
                at = self._clock().isoformat()
                await self._record(namespace, row_key, "undeliverable", draft_id, at)
                await run.complete({"undeliverable": exc.context.get("code"), "at": at}, ttl=CLAIM_TTL)
                return "undeliverable"
            at = self._clock().isoformat()
            await self._record(namespace, row_key, "sent", draft_id, at)
            await run.complete({"sentAt": at, "draftId": draft_id}, ttl=CLAIM_TTL)
            return "sent"

    async def _record(self, namespace: str, key: str, status: str, draft_id: object, at: str) -> None:
        await self.stores.kv.put(namespace, key, {"status": status, "draftId": draft_id, "at": at})

    async def _audit(
        self, snap: Snapshot, report: AnnounceReport, tally: _Tally, *, actor: str, correlation_id: str
    ) -> None:
        await self.stores.audit.append(
            AuditEntry(
                actor=actor,
                action=AUDIT_ACTION,
                target=snap.wave.name,
                reason=f"{snap.stage} announcement, batch {report.batches}",
                correlation_id=correlation_id,
                details={
                    "stage": snap.stage,
                    "batch": report.batches,
                    "sent": tally.sent,
                    "recovered": tally.recovered,
                    "alreadySent": tally.already,
                    "busy": tally.busy,
                    "failed": tally.failed,
                    "undeliverable": tally.undeliverable,
                    "date": report.date,
                },
            )
        )


class GraphAnnouncementMail:
    """Members from the wave group (one paged read with their names and mailboxes) and the
    sender mailbox's drafts, through WaveGuard's Graph client (break-glass guard included)."""

    _PAGES: Final = 200

    def __init__(self, client: GraphServiceClient, plan: RolloutPlan, sender: str) -> None:
        self._client = client
        self._plan = plan
        self._sender = sender

    async def recipients(self, wave: str) -> list[Recipient]:
        from shared.graph.client import get_json
        from shared.graph.users_json import find_group_id_json

        ref = self._plan.wave(wave).group
        group_id = await find_group_id_json(self._client, group_id=ref.id, display_name=ref.display_name)
        if group_id is None:
            return []
        base = str(self._client.request_adapter.base_url).rstrip("/")
        path: str | None = (
            f"/groups/{group_id}/members?$select=id,displayName,mail,userPrincipalName&$top=999"
        )
        found: list[Recipient] = []
        for _ in range(self._PAGES):
            if path is None:
                return found
            page = await get_json(self._client, path) or {}
            for row in page.get("value", []):
                kind = row.get("@odata.type", _USER_TYPE) if isinstance(row, dict) else None
                if isinstance(row, dict) and row.get("id") and kind == _USER_TYPE:
                    found.append(
                        Recipient(
                            str(row["id"]),
                            row.get("displayName") if isinstance(row.get("displayName"), str) else None,
                            row.get("mail") if isinstance(row.get("mail"), str) and row.get("mail") else None,
                            row.get("userPrincipalName")
                            if isinstance(row.get("userPrincipalName"), str)
                            else None,
                        )
                    )
            link = page.get("@odata.nextLink")
            if link is not None and not (isinstance(link, str) and link.startswith(base)):
                raise PermanentError("Graph's next page of members is not under its base URL", wave=wave)
            path = link[len(base) :] if isinstance(link, str) else None
        raise PermanentError(f"list members of wave {wave!r}: paging did not end")

    async def create_draft(self, message: MailMessage, *, tag: str) -> str:
        from shared.graph.mail import create_draft

        return await create_draft(self._client, self._sender, message, tag=tag)

    async def message_state(self, message_id: str) -> MessageState | None:
        from shared.graph.mail import message_state

        return await message_state(self._client, self._sender, message_id)

    async def send_draft(self, message_id: str) -> None:
        from shared.graph.mail import send_draft

        await send_draft(self._client, self._sender, message_id)
