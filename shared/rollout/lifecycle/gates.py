"""The promotion gates of a wave: registration rate, report-only impact, soak days, open alerts, and
(when the plan sets them) MFA helpdesk tickets, MFA prompt frequency and the announcement notice.

Each gate is computed from evidence gathered once per evaluation (one paged read of the
registration report, one of the sign-in log, one read of the helpdesk tickets of the window) and
answers passed or failing with the measured value next to the threshold, so an operator sees how
far a wave is from promotion. A user-experience gate the plan leaves unset is not evaluated at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerting.open_alerts import ALERTS_OPEN_NAMESPACE, list_open_alerts
from shared.config.waves import Gates
from shared.helpdesk import store as ticket_store
from shared.helpdesk.store import TicketRead
from shared.rollout.wave_state import WaveState, WaveStatus
from shared.state import AsyncKeyValuePort

__all__ = [
    "ALERTS_OPEN_NAMESPACE",
    "ANNOUNCED_GATE",
    "REPORT_ONLY_FAILURES",
    "REPORT_ONLY_RESULTS",
    "AnnouncementProgress",
    "GateResult",
    "SignInResult",
    "WaveEvidence",
    "alert_gate",
    "announced_gate",
    "evaluate_gates",
    "mfa_prompts_gate",
    "mfa_tickets_gate",
    "open_critical_alerts",
    "registration_gate",
    "report_only_gate",
    "soak_gate",
]

# KV namespace; key = wave name; value {"open": [{"id": str, "severity": str, "summary": str}]}.
# Whoever opens or closes an alert about a wave (onboarding, alerting) rewrites the list.
# The report-only twin evaluated the sign-in: these results are the evidence, the failures the impact.
REPORT_ONLY_FAILURES: Final = frozenset({"reportOnlyFailure", "reportOnlyInterrupted"})
REPORT_ONLY_RESULTS: Final = REPORT_ONLY_FAILURES | {"reportOnlySuccess"}
_DAY_SECONDS: Final = 86400.0
ANNOUNCED_GATE: Final = "announced"


@dataclass(frozen=True, slots=True)
class AnnouncementProgress:
    """How far the announcement of a wave's next move has reached its current members
    (``shared.rollout.lifecycle.announcements``); break-glass accounts are never counted."""

    stage: str
    with_mailbox: int  # members who can be told
    told: int  # ... who were sent it
    told_before: int  # ... at least announcedDaysBefore days ago, and the date it named has come
    no_mailbox: int  # no mailbox, or an address Exchange refused (quarantined)
    allow_unreachable: bool = False  # communications.allowUnreachable: the share leaves them out
    not_before: datetime | None = None  # the date the messages named, at 12:00 UTC (begun everywhere)
    error: str | None = None  # the progress could not be read: the gate holds

    @property
    def waiting(self) -> int:
        return self.with_mailbox - self.told

    @classmethod
    def unreadable(cls, stage: str, error: str) -> AnnouncementProgress:
        """The progress of a wave whose members or ledger could not be read this evaluation."""
        return cls(stage, 0, 0, 0, 0, error=error)


@dataclass(frozen=True, slots=True)
class SignInResult:
    """One sign-in: its result under the report-only twin policy ("" when the twin did not apply),
    whether it was interactive, whether it put an MFA prompt in front of the user (None: unknown,
    the row does not say whether MFA was required), and its flow's correlation id."""

    user_id: str
    created: datetime
    result: str
    interactive: bool = False
    mfa_prompt: bool | None = None
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class WaveEvidence:
    """What the gates of one wave are computed from."""

    members: frozenset[str]
    registered: frozenset[str]  # every MFA-registered user id in the tenant (filtered to members here)
    sign_ins: Sequence[SignInResult] = ()
    open_critical: Sequence[str] = ()  # ids of open critical alerts about the wave
    # The members' UPNs and mail addresses, case-folded -> member id (read for the ticket gate).
    member_addresses: Mapping[str, str] = field(default_factory=dict)
    known_addresses: frozenset[str] = frozenset()  # ... of the members of every wave (unattributed tickets)
    tickets: TicketRead | None = None  # the window's kept tickets; None: no helpdesk source
    announcement: AnnouncementProgress | None = None  # the next move's announcement, when one is sent

    @property
    def registered_members(self) -> frozenset[str]:
        return self.members & self.registered

    @property
    def unregistered_members(self) -> frozenset[str]:
        return self.members - self.registered


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate: passed or failing, the measured value and the threshold it is held to."""

    name: str
    passed: bool
    measured: float | int | None
    threshold: float | int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "measured": self.measured,
            "threshold": self.threshold,
            "detail": self.detail,
        }


def registration_gate(gates: Gates, evidence: WaveEvidence) -> GateResult:
    """Share of the wave's members with MFA registered, at least ``minRegistrationRate``."""
    members = len(evidence.members)
    registered = len(evidence.registered_members)
    rate = registered / members if members else 0.0
    passed = members > 0 and rate >= gates.min_registration_rate
    detail = f"{registered}/{members} members registered" if members else "the wave has no members yet"
    return GateResult("registration", passed, round(rate, 4), gates.min_registration_rate, detail)


def report_only_gate(gates: Gates, evidence: WaveEvidence, *, since: datetime | None) -> GateResult:
    """Share of members' report-only sign-ins since ``since`` that would have failed, with enough evidence."""
    relevant = [
        s
        for s in evidence.sign_ins
        if s.user_id in evidence.members
        and s.result in REPORT_ONLY_RESULTS
        and (since is None or s.created >= since)
    ]
    failures = sum(1 for s in relevant if s.result in REPORT_ONLY_FAILURES)
    rate = failures / len(relevant) if relevant else 0.0
    if len(relevant) < gates.min_report_only_sign_ins:
        detail = f"{len(relevant)} report-only sign-ins, {gates.min_report_only_sign_ins} needed as evidence"
        return GateResult("report-only-impact", False, None, gates.max_report_only_failure_rate, detail)
    passed = rate <= gates.max_report_only_failure_rate
    detail = f"{failures}/{len(relevant)} report-only sign-ins would have failed"
    return GateResult(
        "report-only-impact", passed, round(rate, 4), gates.max_report_only_failure_rate, detail
    )


def soak_gate(gates: Gates, status: WaveStatus, *, now: datetime) -> GateResult:
    """Days the wave has spent in report-only, at least ``minSoakDays``."""
    if status.state is not WaveState.REPORT_ONLY or status.since is None:
        detail = f"not in report-only (state {status.state.value})"
        return GateResult(
            "soak",
            gates.min_soak_days == 0 and status.state is WaveState.REPORT_ONLY,
            None,
            gates.min_soak_days,
            detail,
        )
    days = max(0.0, (now - status.since).total_seconds() / _DAY_SECONDS)
    passed = days >= gates.min_soak_days
    return GateResult("soak", passed, round(days, 2), gates.min_soak_days, f"{days:.1f} days in report-only")


def alert_gate(gates: Gates, evidence: WaveEvidence) -> GateResult:
    """No open critical alert about the wave (when ``requireNoOpenCriticalAlerts``)."""
    count = len(evidence.open_critical)
    if not gates.require_no_open_critical_alerts:
        return GateResult("no-critical-alerts", True, count, 0, "not required by the plan")
    detail = (
        "no open critical alert"
        if count == 0
        else f"open critical alerts: {', '.join(evidence.open_critical)}"
    )
    return GateResult("no-critical-alerts", count == 0, count, 0, detail)


def mfa_tickets_gate(gates: Gates, evidence: WaveEvidence, *, now: datetime) -> GateResult | None:
    """Members who raised MFA-related helpdesk tickets in the last ``ticketWindowDays``, per 100
    members, at most ``maxMfaTicketsPer100Users``; None when the plan does not set it.

    A ticket counts when it is MFA-related, not deleted, created inside the window, and its
    requester is a member now, matched case-folded on the member's UPN or mail (Jira reports the
    mailbox address). Each member counts once however many tickets they raise, so one person
    cannot hold a wave. Tickets whose requester is no member of any wave are reported as
    unattributed. A day read in part (more tickets than the read cap) fails the gate.
    """
    limit = gates.max_mfa_tickets_per_100_users
    if limit is None:
        return None
    days = gates.ticket_window_days
    read = evidence.tickets
    if read is None:
        detail = (
            "no helpdesk source is configured (helpdesk.standardWebhooks.secrets or helpdesk.jira.secret)"
        )
        return GateResult("mfa-tickets", False, None, limit, detail)
    members = len(evidence.members)
    if not members:
        return GateResult("mfa-tickets", False, None, limit, "the wave has no members yet")
    start = now - timedelta(days=days)
    truncated = [day.isoformat() for day in read.truncated if day >= start.date()]
    if truncated:
        detail = (
            f"evidence truncated: more than {ticket_store.MAX_TICKETS_PER_DAY} kept tickets on "
            f"{', '.join(truncated)}; the figure would undercount"
        )
        return GateResult("mfa-tickets", False, None, limit, detail)
    counted = [
        ticket
        for ticket in read.tickets
        if ticket.mfa_related and ticket.state != "deleted" and ticket.created_at >= start
    ]
    addresses = evidence.member_addresses
    mine = [ticket for ticket in counted if ticket.requester in addresses]
    requesters = {addresses[ticket.requester] for ticket in mine}
    known = evidence.known_addresses | addresses.keys()
    unattributed = sum(1 for ticket in counted if ticket.requester not in known)
    rate = len(requesters) * 100 / members
    detail = (
        f"{len(requesters)} of {members} members raised MFA tickets ({len(mine)} tickets) in the last "
        f"{days} days; {unattributed} unattributed (the requester is no wave member's UPN or mail)"
    )
    return GateResult("mfa-tickets", rate <= limit, round(rate, 2), limit, detail)


def mfa_prompts_gate(
    gates: Gates, evidence: WaveEvidence, *, since: datetime | None, now: datetime
) -> GateResult | None:
    """MFA prompts per member per active day over the last ``promptWindowDays`` (from ``since`` if
    later), at most ``maxMfaPromptsPerUserPerDay``; None when the plan does not set it.

    prompts / active user-days. A prompt is a member's interactive sign-in that asked for MFA, or
    that the report-only twin would have interrupted (``reportOnlyInterrupted``) or failed
    (``reportOnlyFailure``): during report-only the wave's own policy asks nobody, so what it
    would ask is counted too. Rows of one sign-in flow (one correlation id: an interrupted row,
    then the completed one) are one prompt. Active user-days are the (member, UTC day) pairs with
    at least one interactive sign-in. When no row says whether MFA was required (the beta read
    failed, or Graph left ``authenticationRequirement`` out) the figure is not measurable and the
    gate fails: an unknown is never a zero.
    """
    limit = gates.max_mfa_prompts_per_user_per_day
    if limit is None:
        return None
    days = gates.prompt_window_days
    start = max(now - timedelta(days=days), since) if since is not None else now - timedelta(days=days)
    rows = [
        s for s in evidence.sign_ins if s.interactive and s.user_id in evidence.members and s.created >= start
    ]
    active = {(s.user_id, s.created.date()) for s in rows}
    if not active:
        detail = f"no interactive sign-ins by members in the last {days} days"
        return GateResult("mfa-prompts", False, None, limit, detail)
    unmeasured = sum(1 for s in rows if s.mfa_prompt is None)
    if unmeasured == len(rows):
        detail = (
            f"not measurable: none of the {len(rows)} interactive sign-ins by members in the last {days} "
            "days says whether MFA was required (authenticationRequirement: the beta sign-in read failed "
            "or Graph left it out)"
        )
        return GateResult("mfa-prompts", False, None, limit, detail)
    asked: dict[tuple[str, str], bool] = {}  # (member, flow) -> whether anything actually asked
    for index, s in enumerate(rows):
        if s.mfa_prompt or s.result in REPORT_ONLY_FAILURES:
            flow = (s.user_id, s.correlation_id or f"#{index}")
            asked[flow] = asked.get(flow, False) or s.mfa_prompt is True
    prompts = len(asked)
    rate = prompts / len(active)
    parts = [f"{prompts} MFA prompts over {len(active)} active user-days in the last {days} days"]
    if would := sum(1 for actual in asked.values() if not actual):
        parts.append(f"{would} of them would be asked by the report-only policy")
    if unmeasured:
        parts.append(f"{unmeasured} sign-ins did not say whether MFA was required")
    return GateResult("mfa-prompts", rate <= limit, round(rate, 2), limit, "; ".join(parts))


def announced_gate(
    gates: Gates, status: WaveStatus, evidence: WaveEvidence, *, now: datetime | None = None
) -> GateResult | None:
    """The announcement of the wave's next move reached its members ``announcedDaysBefore`` days
    ago and the date it named has come (12:00 UTC of that day): nobody with a mailbox still waiting
    for it, and at least ``announcedShare`` of the members told in time; None when the plan does not
    set the gate.

    The share is over **all** members: one who could not be told (no mailbox, an address Exchange
    refused) did not have the notice, so counts against it, and a wave nobody could be told holds.
    ``communications.allowUnreachable: true`` says the plan expects such members (shared kiosk
    accounts): then the share is over those who can be told, and a wave of only them moves.
    Members who join later are told at the next run and do not restart the clock; a large late
    addition holds the wave until enough of the members now in it had the notice.
    """
    days = gates.announced_days_before
    if days is None:
        return None
    share = gates.announced_share
    progress = evidence.announcement
    if progress is None:
        detail = (
            f"no announcement is due while {status.state.value}"
            if status.state not in (WaveState.REGISTERING, WaveState.REPORT_ONLY)
            else "announcements are not set up (no sender)"
        )
        return GateResult(ANNOUNCED_GATE, False, None, share, detail)
    if progress.error is not None:
        detail = f"{progress.stage}: the announcement's progress could not be read ({progress.error})"
        return GateResult(ANNOUNCED_GATE, False, None, share, detail)
    members = progress.with_mailbox + progress.no_mailbox
    if members == 0:
        return GateResult(ANNOUNCED_GATE, False, None, share, "the wave has no members yet")
    if progress.with_mailbox == 0:
        passed = progress.allow_unreachable
        detail = (
            f"{progress.stage}: no member can be told ({progress.no_mailbox} without a usable mailbox); "
            + (
                "communications.allowUnreachable lets the wave move"
                if passed
                else "held unless communications.allowUnreachable is true"
            )
        )
        return GateResult(ANNOUNCED_GATE, passed, None, share, detail)
    base = progress.with_mailbox if progress.allow_unreachable else members
    rate = progress.told_before / base
    parts = [f"{progress.stage}: {progress.told_before}/{base} members told at least {days} days ago"]
    if progress.waiting:
        parts.append(f"{progress.waiting} still to be told")
    if progress.no_mailbox:
        parts.append(
            f"{progress.no_mailbox} without a usable mailbox"
            + ("" if progress.allow_unreachable else " (counted as not told)")
        )
    early = progress.not_before is not None and now is not None and now < progress.not_before
    if early and progress.not_before is not None:
        parts.append(f"the date the message names holds it until {progress.not_before:%Y-%m-%d %H:%M} UTC")
    passed = progress.waiting == 0 and rate >= share and not early
    return GateResult(ANNOUNCED_GATE, passed, round(rate, 4), share, ", ".join(parts))


def evaluate_gates(
    gates: Gates, status: WaveStatus, evidence: WaveEvidence, *, now: datetime
) -> list[GateResult]:
    """Every promotion gate of a wave, in a fixed order (the user-experience gates last, if set)."""
    since = status.since if status.state is WaveState.REPORT_ONLY else None
    optional = [
        mfa_tickets_gate(gates, evidence, now=now),
        mfa_prompts_gate(gates, evidence, since=since, now=now),
        announced_gate(gates, status, evidence, now=now),
    ]
    return [
        registration_gate(gates, evidence),
        report_only_gate(gates, evidence, since=since),
        soak_gate(gates, status, now=now),
        alert_gate(gates, evidence),
        *(gate for gate in optional if gate is not None),
    ]


async def open_critical_alerts(kv: AsyncKeyValuePort, wave: str) -> list[str]:
    """Ids of the open critical alerts recorded for ``wave`` (``shared.alerting.open_alerts``).

    Raises:
        InvalidPayloadError: the record is not ``{"open": [{"id", "severity", ...}]}``.
        RetryableError: the store is unavailable.
    """
    return [a.id for a in await list_open_alerts(kv, wave) if a.severity == "critical"]
