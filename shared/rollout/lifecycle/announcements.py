"""Announcements: before a wave moves to report-only, and again before it is enforced, each member
is told what changes, from when, how to register Microsoft Authenticator and whom to ask.

Exactly once per member, stage and entry into that stage, whatever the redeliveries, concurrent
ticks, stalled holders or crashes (docs/waves.md, 'Announcements'):

- a stage's **cycle** is the wave's entry into the state that announces it (its ``since``): a wave
  rolled back and promoted again starts a new cycle, with its own ledger rows, claims and date;
- the idempotency key ``announce:<wave>:<stage>:<cycle>:<user id>`` (400 days) is claimed before
  anything is written; another holder means "skip, the next run sees it";
- the message is saved as a draft in the sender mailbox and its immutable id recorded in the
  wave's ledger (KV ``announcements-<wave>``/``<stage>:<cycle>:<user id>``) **before** it is sent,
  with a token naming this holder; every ledger write is conditional (``if_absent``, then
  ``if_match`` on the ETag read), so a holder whose claim was taken over cannot overwrite its
  successor's row;
- right before the send the holder re-reads the row and sends only if it still holds it (same
  token and ETag) and its claim is younger than half the claim expiry: a holder that stalled
  (laptop asleep, 429 retries) past that gives up instead of racing the one that took over;
- a run that finds a recorded draft asks Graph whether that message was sent: if so it only
  records it, else it takes the row over and sends that same draft; a run that takes over a claim
  with no row yet first looks for a draft carrying the claim's tag header (the stalled holder may
  have created it) and uses it instead of creating a second one.

Sending takes tokens from the sender mailbox's budget (``mail_budget``) before each batch and
stops when the run's time is up, checked before each member; the members still waiting are sent
on the next run. Each batch is audited (``wave.announce``, counts only). Break-glass accounts are
never announced to.
"""

from __future__ import annotations

import asyncio
import html
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from shared.config.communications import Stage, StageTemplate
from shared.config.plan import RolloutPlan
from shared.config.waves import Wave
from shared.errors import PermanentError, RetryableError, WaveGuardError
from shared.graph.mail import MailMessage, MessageState
from shared.rollout.lifecycle.gates import AnnouncementProgress
from shared.rollout.lifecycle.mail_budget import restamp_mail_budget, take_mail_budget
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import AsyncStores, AuditEntry, ConcurrencyError
from shared.state.once import Run, once

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
    "allows_unreachable",
    "announce_key",
    "communications_enabled",
    "cycle_of",
    "format_date",
    "ledger_namespace",
    "promise_kept_at",
    "recipient_level",
    "render_announcement",
    "stage_for",
]

log = logging.getLogger(__name__)

# KV namespace; key "<wave>:<stage>:<cycle>"; value {"startedAt", "date"}: when the cycle's first
# batch went out and the day every message of it names as {date} (startedAt + announcedDaysBefore).
ANNOUNCEMENTS_NAMESPACE: Final = "announcements"
CLAIM_TTL: Final = timedelta(days=400)
IN_PROGRESS_EXPIRY: Final = timedelta(minutes=15)
# A holder whose claim is older than this does not send: the claim may be taken over at
# IN_PROGRESS_EXPIRY, and the margin covers the re-read and the send request itself.
MAX_CLAIM_AGE_TO_SEND: Final = IN_PROGRESS_EXPIRY / 2
# Outlook allows 4 concurrent requests per mailbox.
SEND_CONCURRENCY: Final = 4
AUDIT_ACTION: Final = "wave.announce"
# Recipient-level failures of one member before it is quarantined as undeliverable.
QUARANTINE_AFTER: Final = 3
# The {date} promised is a UTC day; it has begun everywhere (UTC-12 included) at 12:00 UTC.
PROMISE_HOUR_UTC: Final = 12
_USER_TYPE: Final = "#microsoft.graph.user"
# PS_INTERNET_HEADERS: the property set Exchange keeps a message's custom internet headers in.
_INTERNET_HEADERS: Final = "00020386-0000-0000-C000-000000000046"
# What Exchange answers for an address it cannot deliver to: that member's problem at once.
_RECIPIENT_ERRORS: Final = frozenset({"ErrorInvalidRecipients"})
# What Graph answers when the sender (its mailbox, its permissions) is the problem: every other
# member would be refused too, so the run stops.
_SENDER_ERRORS: Final = frozenset(
    {
        "ErrorAccessDenied",
        "ErrorSendAsDenied",
        "AccessDenied",
        "Authorization_RequestDenied",
        "ErrorInvalidUser",
        "ErrorMailboxNotFound",
        "ErrorNonExistentMailbox",
        "MailboxNotEnabledForRESTAPI",
        "MailboxNotHostedInExchangeOnline",
        "ErrorQuotaExceeded",
        "ErrorSubmissionQuotaExceeded",
    }
)


def ledger_namespace(wave: str) -> str:
    """KV namespace of a wave's announcement ledger; key ``<stage>:<cycle>:<user id>``; value
    ``{"status": "drafted"|"failed"|"sent"|"undeliverable", "draftId", "at", "date", "holder",
    "failures"}``."""
    return f"announcements-{wave}"


def cycle_of(since: datetime | None) -> str:
    """The cycle of a stage: the wave's entry into the state that announces it (``since``, to the
    second, UTC); ``0`` for a wave without a recorded entry."""
    if since is None:
        return "0"
    return since.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def announce_key(wave: str, stage: Stage, user_id: str, cycle: str = "0") -> str:
    """The idempotency key of one member's announcement of one stage in one cycle."""
    return f"announce:{wave}:{stage}:{cycle}:{user_id}"


def stage_for(state: WaveState) -> Stage | None:
    """The announcement a wave in ``state`` sends: the one before its next move."""
    return {WaveState.REGISTERING: "reportOnly", WaveState.REPORT_ONLY: "enforce"}.get(state)  # type: ignore[return-value]


def communications_enabled(plan: RolloutPlan, wave: Wave) -> bool:
    """Whether ``wave`` sends announcements (its own ``communications.enabled``, else the plan's)."""
    own = wave.communications.enabled
    return plan.communications.enabled if own is None else own


def allows_unreachable(plan: RolloutPlan, wave: Wave) -> bool:
    """Whether ``wave`` may move although members could not be told (``allowUnreachable``)."""
    own = wave.communications.allow_unreachable
    return plan.communications.allow_unreachable if own is None else own


def format_date(day: date) -> str:
    """``Monday 9 March 2026``: unambiguous in every English locale."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def promise_kept_at(day: date) -> datetime:
    """When a message saying "from {day}" is true everywhere: that UTC day at 12:00 UTC, when it
    has begun in every time zone (UTC-12 included)."""
    return datetime.combine(day, time(PROMISE_HOUR_UTC), tzinfo=UTC)


def recipient_level(exc: PermanentError, recipient: Recipient) -> bool:
    """Whether Graph refused one message for its recipient (quarantine the member after a few) and
    not the sender (stop the run: every member would be refused).

    Sender-level: 401/403, or a code naming the sender's access, mailbox or quota. Recipient-level:
    Exchange's invalid-recipient code, an error that names the recipient's address, or a 400/404/
    413 for that one message (its draft, its address). Anything else stops the run: unknown is
    treated as the sender's, the safe side.
    """
    code = str(exc.context.get("code") or "")
    status = exc.context.get("status")
    if code in _SENDER_ERRORS or status in (401, 403):
        return False
    if code in _RECIPIENT_ERRORS:
        return True
    text = str(exc).casefold()
    if recipient.mail and recipient.mail.casefold() in text:
        return True
    return status in (400, 404, 413)


def _day(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


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
        """Save ``message`` as a draft in the sender mailbox, carrying ``tag`` in its tag header;
        its immutable id."""
        ...

    async def find_tagged(self, tag: str) -> tuple[str, MessageState] | None:
        """A message of the sender mailbox carrying ``tag`` (a draft or sent), or None."""
        ...

    async def message_state(self, message_id: str) -> MessageState | None:
        """``draft``, ``sent``, or None when the message is gone."""
        ...

    async def send_draft(self, message_id: str) -> None:
        """Send a saved draft."""
        ...


@dataclass(slots=True)
class Snapshot:
    """One read of a wave's stage in its current cycle: its members, its ledger and its summary."""

    wave: Wave
    stage: Stage
    members: list[Recipient]  # break-glass accounts left out
    ledger: dict[str, dict[str, Any]]  # user id -> ledger row
    summary: dict[str, Any]
    break_glass: int = 0
    cycle: str = "0"
    allow_unreachable: bool = False

    def row_key(self, user_id: str) -> str:
        return f"{self.stage}:{self.cycle}:{user_id}"

    @property
    def summary_key(self) -> str:
        return f"{self.wave.name}:{self.stage}:{self.cycle}"

    def sent_at(self, user_id: str) -> datetime | None:
        row = self.ledger.get(user_id)
        if row is None or row.get("status") != "sent":
            return None
        try:
            return datetime.fromisoformat(str(row.get("at")))
        except ValueError:
            return None

    def promised(self, user_id: str) -> date | None:
        """The {date} the member's message named (else the cycle's)."""
        return _day(self.ledger.get(user_id, {}).get("date")) or self.cycle_date

    @property
    def cycle_date(self) -> date | None:
        """The {date} the cycle's first batch fixed; None before it went out."""
        return _day(self.summary.get("date"))

    @property
    def with_mailbox(self) -> list[Recipient]:
        """Members who can be told: a mailbox Exchange has not refused for this cycle."""
        return [
            m for m in self.members if m.mail and self.ledger.get(m.id, {}).get("status") != "undeliverable"
        ]

    @property
    def pending(self) -> list[Recipient]:
        """Members with a mailbox the stage has not reached yet, in id order."""
        return sorted((m for m in self.with_mailbox if self.sent_at(m.id) is None), key=lambda m: m.id)

    def progress(self, now: datetime) -> AnnouncementProgress:
        """What the ``announced`` gate reads: a member counts as told in time once it was sent the
        message at least announcedDaysBefore days ago **and** the date the message named has come
        (``promise_kept_at``)."""
        days = self.wave.gates.announced_days_before or 0
        cutoff = now - timedelta(days=days)
        in_time = 0
        told = 0
        for member in self.with_mailbox:
            at = self.sent_at(member.id)
            if at is None:
                continue
            told += 1
            day = self.promised(member.id) or (at + timedelta(days=days)).date()
            if at <= cutoff and now >= promise_kept_at(day):
                in_time += 1
        cycle_day = self.cycle_date
        with_mailbox = len(self.with_mailbox)
        return AnnouncementProgress(
            stage=self.stage,
            with_mailbox=with_mailbox,
            told=told,
            told_before=in_time,
            no_mailbox=len(self.members) - with_mailbox,
            allow_unreachable=self.allow_unreachable,
            not_before=promise_kept_at(cycle_day) if cycle_day is not None else None,
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
    not_started: int = 0  # the run's time was up before their turn
    errors: list[str] = field(default_factory=list)
    permanent: str | None = None


class _Superseded(Exception):
    """This holder no longer owns the member's row (taken over) or held its claim too long."""


class _RecipientRefused(RetryableError):
    """Graph refused this member's message (counted on its row; quarantined after a few)."""


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
        """Read the wave's members (one paged Graph read), its state (for the cycle), its ledger of
        the stage's cycle (one range query) and the cycle's summary.

        Raises:
            RetryableError / PermanentError: Graph or the store failed.
        """
        members, guarded = [], 0
        for member in await self._mail.recipients(wave.name):
            if self.plan.break_glass.is_break_glass(user_id=member.id, upn=member.upn):
                guarded += 1  # never a wave member by design; never announced to either
                continue
            members.append(member)
        status = await read_wave_state(self.stores.kv, wave.name)
        cycle = cycle_of(status.since)
        prefix = f"{stage}:{cycle}:"
        rows = await self.stores.kv.items(
            ledger_namespace(wave.name), start=prefix, stop=f"{stage}:{cycle};", limit=1_000_000
        )
        ledger = {
            key[len(prefix) :]: value
            for key, value in rows
            if isinstance(value, dict) and key.startswith(prefix) and len(key) > len(prefix)
        }
        snap = Snapshot(
            wave,
            stage,
            members,
            ledger,
            {},
            guarded,
            cycle=cycle,
            allow_unreachable=allows_unreachable(self.plan, wave),
        )
        stored = await self.stores.kv.get(ANNOUNCEMENTS_NAMESPACE, snap.summary_key)
        snap.summary = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        return snap

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
        still_due: Callable[[], Awaitable[bool]] | None = None,
    ) -> AnnounceReport:
        """Send the stage's announcement to every member still waiting for it, batch by batch
        within the mail budget, until done or the run's time is up (``deadline`` if given, else
        ``budget.maxSecondsPerRun`` from now; checked before each member); with ``dry_run`` only
        count and render a preview. ``still_due`` is asked before each batch after the first: when
        it answers False (the wave moved meanwhile) the run stops.

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
        end = deadline if deadline is not None else now + timedelta(seconds=budget.max_seconds_per_run)
        queue = list(pending)
        not_started = 0
        while queue:
            now = self._clock()
            if report.batches and still_due is not None and not await still_due():
                report.stopped = "stage changed"
                break
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
            tally = await self._send_batch(snap, batch, day, end)
            await restamp_mail_budget(
                self.stores.kv, self.sender, taken_at=now, count=grant.granted, sent_at=self._clock()
            )
            report.batches += 1
            report.sent += tally.sent
            report.recovered += tally.recovered
            report.already_sent += tally.already
            report.busy += tally.busy
            report.failed += tally.failed
            report.undeliverable += tally.undeliverable
            not_started += tally.not_started
            await self._audit(snap, report, tally, actor=actor, correlation_id=correlation_id)
            if tally.permanent is not None:
                report.stopped, report.error = "refused", tally.permanent
                break
            if tally.errors:
                report.error = tally.errors[-1]
            if tally.not_started or (queue and self._clock() >= end):
                report.stopped = "time"
                break
        report.remaining = len(queue) + not_started + report.busy + report.failed
        report.to_send = len(pending)
        return report

    def _date(self, snap: Snapshot, now: datetime) -> date:
        """The cycle's {date}: the one fixed by its first batch (startedAt + announcedDaysBefore),
        today for a member told after that day has passed."""
        days = snap.wave.gates.announced_days_before or 0
        stored = snap.summary.get("date")
        try:
            fixed = date.fromisoformat(str(stored)) if stored else (now + timedelta(days=days)).date()
        except ValueError:
            fixed = (now + timedelta(days=days)).date()
        return max(fixed, now.date())

    async def _start(self, snap: Snapshot, now: datetime) -> date:
        """Fix the cycle's start and {date} before its first batch (the first writer wins)."""
        if not snap.summary.get("date"):
            days = snap.wave.gates.announced_days_before or 0
            value = {"startedAt": now.isoformat(), "date": (now + timedelta(days=days)).date().isoformat()}
            try:
                await self.stores.kv.put(ANNOUNCEMENTS_NAMESPACE, snap.summary_key, value, if_absent=True)
                snap.summary = value
            except ConcurrencyError:
                stored = await self.stores.kv.get(ANNOUNCEMENTS_NAMESPACE, snap.summary_key)
                snap.summary = (
                    stored.value if stored is not None and isinstance(stored.value, dict) else value
                )
        return self._date(snap, now)

    async def _send_batch(
        self, snap: Snapshot, batch: Sequence[Recipient], day: date, end: datetime
    ) -> _Tally:
        tally = _Tally()
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(member: Recipient) -> None:
            async with gate:
                if tally.permanent is not None or self._clock() > end:
                    tally.not_started += 1  # the run stops: this member waits for the next one
                    return
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
                recorded draft is checked, never re-sent blindly, by the next attempt). A
                recipient-level refusal is counted on the member's row (``RetryableError``) and
                quarantines it after ``QUARANTINE_AFTER``.
        """
        async with once(
            self.stores.idempotency,
            announce_key(snap.wave.name, snap.stage, member.id, snap.cycle),
            ttl=CLAIM_TTL,
            in_progress_expiry=IN_PROGRESS_EXPIRY,
            when_busy="skip",
        ) as run:
            if run.skipped:
                return "busy"
            if run.done:
                return await self._settled(snap, member, run)
            try:
                return await self._claimed(snap, member, day, run, claimed_at=self._clock())
            except _Superseded as exc:
                log.info(
                    "announcement left to another holder", extra={"wave": snap.wave.name, "why": str(exc)}
                )
                await run.release()  # never undoes a completion; the row decides from here
                return "busy"

    async def _settled(self, snap: Snapshot, member: Recipient, run: Run) -> str:
        """A completed claim: make sure the ledger says what the claim knows."""
        namespace, key = ledger_namespace(snap.wave.name), snap.row_key(member.id)
        row, etag = await self._row(namespace, key)
        if "undeliverable" in run.result:
            if row.get("status") != "undeliverable":
                at = str(run.result.get("at") or self._clock().isoformat())
                await self._write_quietly(namespace, key, {**row, "status": "undeliverable", "at": at}, etag)
            return "undeliverable"
        if row.get("status") != "sent" and run.result.get("sentAt"):  # the ledger lost it: the claim knows
            value = {
                **row,
                "status": "sent",
                "draftId": run.result.get("draftId"),
                "at": run.result["sentAt"],
            }
            await self._write_quietly(namespace, key, value, etag)
        return "already"

    async def _claimed(
        self, snap: Snapshot, member: Recipient, day: date, run: Run, *, claimed_at: datetime
    ) -> str:
        namespace, key = ledger_namespace(snap.wave.name), snap.row_key(member.id)
        row, etag = await self._row(namespace, key)
        status = row.get("status")
        if status == "sent":
            await run.complete({"sentAt": row.get("at"), "draftId": row.get("draftId")}, ttl=CLAIM_TTL)
            return "already"
        if status == "undeliverable":
            await run.complete({"undeliverable": row.get("reason"), "at": row.get("at")}, ttl=CLAIM_TTL)
            return "undeliverable"
        draft_id = str(row["draftId"]) if status in ("drafted", "failed") and row.get("draftId") else None
        state: MessageState | None = None
        if draft_id is not None:
            state = await self._mail.message_state(draft_id)
            if state is None:
                draft_id = None  # deleted by someone: start over
        elif etag is None and run.taken_over:
            # The holder before us may have created a draft it never recorded (and may still).
            found = await self._mail.find_tagged(run.key)
            if found is not None:
                draft_id, state = found
        if draft_id is not None and state == "sent":
            at = self._clock().isoformat()
            await self._write(namespace, key, {**row, "status": "sent", "draftId": draft_id, "at": at}, etag)
            await run.complete({"sentAt": at, "draftId": draft_id}, ttl=CLAIM_TTL)
            return "recovered"
        token = uuid.uuid4().hex
        failures = int(row.get("failures") or 0)
        promised = str(row.get("date") or day.isoformat()) if draft_id is not None else day.isoformat()
        try:
            if draft_id is None:
                message = render_announcement(self.plan, snap.wave, snap.stage, member, day)
                draft_id = await self._mail.create_draft(message, tag=run.key)
            owned = {
                "status": "drafted",
                "draftId": draft_id,
                "at": self._clock().isoformat(),
                "date": promised,
                "holder": token,
                "failures": failures,
            }
            etag = await self._write(namespace, key, owned, etag)
            await self._check_still_ours(namespace, key, token, etag, claimed_at)
            await self._mail.send_draft(draft_id)
        except PermanentError as exc:
            if not recipient_level(exc, member):
                raise
            return await self._refused(snap, member, run, exc, draft_id, failures, etag)
        at = self._clock().isoformat()
        try:
            await self._write(namespace, key, {**owned, "status": "sent", "at": at}, etag)
        except _Superseded:
            # It went out; whoever changed the row finds the draft sent and records it.
            log.warning("announcement sent, its row changed meanwhile", extra={"wave": snap.wave.name})
        await run.complete({"sentAt": at, "draftId": draft_id}, ttl=CLAIM_TTL)
        return "sent"

    async def _check_still_ours(
        self, namespace: str, key: str, token: str, etag: str, claimed_at: datetime
    ) -> None:
        """Right before the send: this holder still owns the row, and its claim is young enough
        that no one can have taken it over (``MAX_CLAIM_AGE_TO_SEND``)."""
        if self._clock() - claimed_at > MAX_CLAIM_AGE_TO_SEND:
            raise _Superseded("the claim is too old to send safely")
        current = await self.stores.kv.get(namespace, key)
        value = current.value if current is not None and isinstance(current.value, dict) else {}
        if current is None or current.etag != etag or value.get("holder") != token:
            raise _Superseded("the row was taken over")

    async def _refused(
        self,
        snap: Snapshot,
        member: Recipient,
        run: Run,
        exc: PermanentError,
        draft_id: str | None,
        failures: int,
        known: str | None,
    ) -> str:
        """A recipient-level refusal: counted on the member's row; Exchange's invalid-recipient
        answer, or the QUARANTINE_AFTER-th refusal, quarantines the member as undeliverable. Only
        while the row is as this holder left it (``known``): otherwise another holder has it."""
        namespace, key = ledger_namespace(snap.wave.name), snap.row_key(member.id)
        row, etag = await self._row(namespace, key)
        if etag != known:
            raise _Superseded("the row changed since this holder last wrote it")
        failures += 1
        code = str(exc.context.get("code") or exc.context.get("status") or type(exc).__name__)
        at = self._clock().isoformat()
        if code in _RECIPIENT_ERRORS or failures >= QUARANTINE_AFTER:
            value = {
                "status": "undeliverable",
                "draftId": draft_id,
                "at": at,
                "reason": code,
                "failures": failures,
            }
            await self._write(namespace, key, value, etag)
            await run.complete({"undeliverable": code, "at": at}, ttl=CLAIM_TTL)
            return "undeliverable"
        value = {
            **row,
            "status": "failed",
            "draftId": draft_id,
            "at": at,
            "reason": code,
            "failures": failures,
        }
        value.pop("holder", None)
        await self._write(namespace, key, value, etag)
        raise _RecipientRefused(f"{type(exc).__name__}: {exc}") from None

    async def _row(self, namespace: str, key: str) -> tuple[dict[str, Any], str | None]:
        stored = await self.stores.kv.get(namespace, key)
        if stored is None:
            return {}, None
        return (dict(stored.value) if isinstance(stored.value, dict) else {}), stored.etag

    async def _write(self, namespace: str, key: str, value: dict[str, Any], etag: str | None) -> str:
        """A conditional ledger write: a new row only if there is none, an update only if the row
        is still the one read (``ConcurrencyError`` otherwise: another holder moved it)."""
        try:
            return await self.stores.kv.put(namespace, key, value, if_match=etag, if_absent=etag is None)
        except ConcurrencyError as exc:
            raise _Superseded("the row changed since it was read") from exc

    async def _write_quietly(self, namespace: str, key: str, value: dict[str, Any], etag: str | None) -> None:
        try:
            await self._write(namespace, key, value, etag)
        except _Superseded:
            log.info("announcement row changed meanwhile; left as is", extra={"key": key})

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

    async def find_tagged(self, tag: str) -> tuple[str, MessageState] | None:
        """One filtered read of the sender's messages (every folder) by the tag header, which
        Exchange keeps as a named property of the internet headers' property set."""
        from urllib.parse import quote

        from shared.graph.client import request_json
        from shared.graph.mail import IMMUTABLE_IDS, TAG_HEADER

        prop = f"String {{{_INTERNET_HEADERS}}} Name {TAG_HEADER}"
        value = tag.replace("'", "''")
        query = quote(f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq '{value}')")
        answer = await request_json(
            self._client,
            "GET",
            f"/users/{self._sender}/messages?$filter={query}&$select=id,isDraft&$top=1",
            operation="find tagged message",
            headers=IMMUTABLE_IDS,
        )
        for row in (answer or {}).get("value", []):
            if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]:
                return str(row["id"]), ("draft" if row.get("isDraft") else "sent")
        return None

    async def message_state(self, message_id: str) -> MessageState | None:
        from shared.graph.mail import message_state

        return await message_state(self._client, self._sender, message_id)

    async def send_draft(self, message_id: str) -> None:
        from shared.graph.mail import send_draft

        await send_draft(self._client, self._sender, message_id)
