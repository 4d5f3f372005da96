"""Reminders to wave members who have not registered MFA, escalated to their manager after N days.

At-least-once safe: each user is nudged at most once per period (claim
``nudge:{wave}:{user}:{period}``), the manager at most once per period (its own claim), and a
failed send releases its claim so the next run tries again. The period is counted from the
user's first nudge (KV namespace ``nudges``), so the cadence is the plan's ``everyDays``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from shared.config.waves import Wave
from shared.errors import WaveGuardError
from shared.graph.mail import MailMessage
from shared.onboarding.tap_mail import REGISTRATION_URL
from shared.state import ConcurrencyError, IdempotencyPort, KeyValuePort

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "NUDGES_NAMESPACE",
    "Contact",
    "GraphNudgeMail",
    "NudgeMail",
    "NudgeReport",
    "compose_manager_nudge",
    "compose_nudge",
    "nudge_period",
    "send_nudges",
]

log = logging.getLogger(__name__)

# KV namespace; key "{wave}:{user id}"; value {"first": ISO-8601}: when the user was first nudged.
NUDGES_NAMESPACE: Final = "nudges"
_IN_PROGRESS_EXPIRY: Final = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a nudge goes: the user's mailbox and, when set, their manager's."""

    user_id: str
    name: str
    address: str | None
    manager_name: str | None = None
    manager_address: str | None = None


class NudgeMail(Protocol):
    """Looks people up and sends mail (Graph in production, a fake in unit tests)."""

    async def contact(self, user_id: str) -> Contact | None: ...

    async def send(self, message: MailMessage) -> None: ...


@dataclass(slots=True)
class NudgeReport:
    """What one nudge run did for one wave."""

    wave: str
    sent: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    skipped: int = 0  # already nudged this period, or no mailbox
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"wave": self.wave, "sent": len(self.sent), "escalated": len(self.escalated),
                "skipped": self.skipped, "failed": len(self.failed)}  # fmt: skip


def nudge_period(first: datetime, now: datetime, every_days: int) -> int:
    """The index of the nudge period ``now`` falls in, counting from the first nudge."""
    return max(0, int((now - first).total_seconds() // (every_days * 86400)))


def compose_nudge(contact: Contact, wave: str) -> MailMessage:
    """The reminder to the user: why, and where to register."""
    body = "\n".join([
        f"Hello {contact.name},",
        "",
        f"Your account is part of the '{wave}' rollout of multi-factor authentication (MFA), and it",
        "has no MFA method registered yet. Soon every sign-in will ask for one.",
        "",
        f"Please go to {REGISTRATION_URL} and add the Microsoft Authenticator app (or another method",
        "offered). It takes about five minutes.",
        "",
        "If you need help, contact the IT service desk.",
    ])  # fmt: skip
    assert contact.address is not None
    return MailMessage(
        subject="Action needed: set up multi-factor authentication", body=body, to=[contact.address]
    )


def compose_manager_nudge(contact: Contact, wave: str, days: int) -> MailMessage:
    """The escalation to the manager: who has not registered, for how long, and what to do."""
    body = "\n".join([
        f"Hello {contact.manager_name},",
        "",
        f"{contact.name} has not set up multi-factor authentication (MFA) {days} days after the first",
        f"reminder (rollout wave '{wave}'). Once the wave is enforced they will not be able to sign in",
        "without it.",
        "",
        f"Please ask them to register at {REGISTRATION_URL}, or contact the IT service desk.",
    ])  # fmt: skip
    assert contact.manager_address is not None
    return MailMessage(subject=f"MFA not set up yet: {contact.name}", body=body, to=[contact.manager_address])


async def send_nudges(
    mail: NudgeMail, *, idempotency: IdempotencyPort, kv: KeyValuePort, wave: Wave,
    unregistered: Iterable[str], now: datetime,
) -> NudgeReport:  # fmt: skip
    """Nudge each unregistered member once this period; escalate to managers after the plan's days.

    Raises:
        RetryableError: the state store is unavailable (Graph failures are counted per user instead).
    """
    report = NudgeReport(wave.name)
    if not wave.nudges.enabled:
        return report
    for user_id in sorted(unregistered):
        first = _first_nudge(kv, wave.name, user_id, now)
        period = nudge_period(first, now, wave.nudges.every_days)
        days = int((now - first).total_seconds() // 86400)
        escalate = days >= wave.nudges.escalate_to_manager_after_days
        try:
            await _nudge_user(mail, idempotency, wave, user_id, period, escalate, days, report)
        except WaveGuardError as exc:
            log.warning(
                "nudge failed", extra={"wave": wave.name, "user_id": user_id, "error": type(exc).__name__}
            )
            report.failed.append(user_id)
    return report


async def _nudge_user(
    mail: NudgeMail, idempotency: IdempotencyPort, wave: Wave, user_id: str, period: int,
    escalate: bool, days: int, report: NudgeReport,
) -> None:  # fmt: skip
    ttl = timedelta(days=wave.nudges.every_days * 2)
    user_key = f"nudge:{wave.name}:{user_id}:{period}"
    manager_key = f"nudge-manager:{wave.name}:{user_id}:{period}"
    wants_user = _claim(idempotency, user_key, ttl)
    wants_manager = escalate and _claim(idempotency, manager_key, ttl)
    if not wants_user and not wants_manager:
        report.skipped += 1
        return
    contact = await _contact_or_release(
        mail, idempotency, user_id, [user_key] * wants_user + [manager_key] * wants_manager
    )
    if contact is None or contact.address is None:
        for key in [user_key] * wants_user + [manager_key] * wants_manager:
            idempotency.complete(key, {"skipped": "no mailbox"}, ttl=ttl)
        report.skipped += 1
        return
    if wants_user:
        await _send_once(mail, idempotency, user_key, compose_nudge(contact, wave.name), ttl)
        report.sent.append(user_id)
    if wants_manager:
        if contact.manager_address is None:
            idempotency.complete(manager_key, {"skipped": "no manager"}, ttl=ttl)
            return
        await _send_once(mail, idempotency, manager_key, compose_manager_nudge(contact, wave.name, days), ttl)
        report.escalated.append(user_id)


async def _contact_or_release(
    mail: NudgeMail, idempotency: IdempotencyPort, user_id: str, keys: list[str]
) -> Contact | None:
    try:
        return await mail.contact(user_id)
    except WaveGuardError:
        for key in keys:
            idempotency.release(key)
        raise


async def _send_once(
    mail: NudgeMail, idempotency: IdempotencyPort, key: str, message: MailMessage, ttl: timedelta
) -> None:
    try:
        await mail.send(message)
    except WaveGuardError:
        idempotency.release(key)  # not sent: the next run may try again this period
        raise
    idempotency.complete(key, {"sent": True}, ttl=ttl)


def _claim(idempotency: IdempotencyPort, key: str, ttl: timedelta) -> bool:
    claim = idempotency.claim(key, ttl=ttl, in_progress_expiry=_IN_PROGRESS_EXPIRY)
    return claim.acquired


def _first_nudge(kv: KeyValuePort, wave: str, user_id: str, now: datetime) -> datetime:
    key = f"{wave}:{user_id}"
    stored = kv.get(NUDGES_NAMESPACE, key)
    if stored is None:
        try:
            kv.put(NUDGES_NAMESPACE, key, {"first": now.isoformat()}, if_absent=True)
            return now
        except ConcurrencyError:
            stored = kv.get(NUDGES_NAMESPACE, key)
    value = stored.value if stored is not None else None
    raw = value.get("first") if isinstance(value, dict) else None
    try:
        return datetime.fromisoformat(str(raw)) if raw else now
    except ValueError:
        return now


class GraphNudgeMail:
    """Contacts from the directory (user + manager) and mail through Graph sendMail."""

    def __init__(self, client: GraphServiceClient, sender: str) -> None:
        self._client = client
        self._sender = sender

    async def contact(self, user_id: str) -> Contact | None:
        from shared.graph.directory import find_user
        from shared.graph.people import get_manager

        user = await find_user(
            self._client, user_id, select=("id", "displayName", "mail", "userPrincipalName")
        )
        if user is None:
            return None
        manager = await get_manager(self._client, user_id)
        return Contact(
            user_id, user.display_name or user_id, user.mail,
            manager.display_name if manager else None, manager.mail if manager else None,
        )  # fmt: skip

    async def send(self, message: MailMessage) -> None:
        from shared.graph.mail import send_mail

        await send_mail(self._client, self._sender, message)
