"""Reminders to wave members who have not registered MFA, escalated to their manager after N days.

At-least-once safe: each user is nudged at most once per period (claim
``nudge:{wave}:{user}:{period}``), the manager at most once per period (its own claim), and a
failed send releases its claim so the next run tries again. The period is counted from the
user's first nudge (KV namespace ``nudges``), so the cadence is the plan's ``everyDays``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from shared.config.waves import Wave
from shared.errors import WaveGuardError
from shared.graph.mail import MailMessage
from shared.names import REGISTRATION_URL
from shared.state import AsyncIdempotencyPort, AsyncKeyValuePort, ConcurrencyError
from shared.state.once import Run, once

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
        return {
            "wave": self.wave,
            "sent": len(self.sent),
            "escalated": len(self.escalated),
            "skipped": self.skipped,
            "failed": len(self.failed),
        }


def nudge_period(first: datetime, now: datetime, every_days: int) -> int:
    """The index of the nudge period ``now`` falls in, counting from the first nudge."""
    return max(0, int((now - first).total_seconds() // (every_days * 86400)))


def compose_nudge(contact: Contact, wave: str) -> MailMessage:
    """The reminder to the user: why, and where to register."""
    body = "\n".join(
        [
            f"Hello {contact.name},",
            "",
            f"Your account is part of the '{wave}' rollout of multi-factor authentication (MFA), and it",
            "has no MFA method registered yet. Soon every sign-in will ask for one.",
            "",
            f"Please go to {REGISTRATION_URL} and add the Microsoft Authenticator app (or another method",
            "offered). It takes about five minutes.",
            "",
            "If you need help, contact the IT service desk.",
        ]
    )
    assert contact.address is not None
    return MailMessage(
        subject="Action needed: set up multi-factor authentication", body=body, to=[contact.address]
    )


def compose_manager_nudge(contact: Contact, wave: str, days: int) -> MailMessage:
    """The escalation to the manager: who has not registered, for how long, and what to do."""
    body = "\n".join(
        [
            f"Hello {contact.manager_name},",
            "",
            f"{contact.name} has not set up multi-factor authentication (MFA) {days} days after the first",
            f"reminder (rollout wave '{wave}'). Once the wave is enforced they will not be able to sign in",
            "without it.",
            "",
            f"Please ask them to register at {REGISTRATION_URL}, or contact the IT service desk.",
        ]
    )
    assert contact.manager_address is not None
    return MailMessage(subject=f"MFA not set up yet: {contact.name}", body=body, to=[contact.manager_address])


async def send_nudges(
    mail: NudgeMail,
    *,
    idempotency: AsyncIdempotencyPort,
    kv: AsyncKeyValuePort,
    wave: Wave,
    unregistered: Iterable[str],
    now: datetime,
) -> NudgeReport:
    """Nudge each unregistered member once this period; escalate to managers after the plan's days.

    Raises:
        RetryableError: the state store is unavailable (Graph failures are counted per user instead).
    """
    report = NudgeReport(wave.name)
    if not wave.nudges.enabled:
        return report
    for user_id in sorted(unregistered):
        first = await _first_nudge(kv, wave.name, user_id, now)
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
    mail: NudgeMail,
    idempotency: AsyncIdempotencyPort,
    wave: Wave,
    user_id: str,
    period: int,
    escalate: bool,
    days: int,
    report: NudgeReport,
) -> None:
    """Nudge the user (and, on escalation, their manager) once this period; a failed send leaves
    its key released, so the next run may try again this period."""
    ttl = timedelta(days=wave.nudges.every_days * 2)

    def claim(key: str) -> contextlib.AbstractAsyncContextManager[Run]:
        return once(idempotency, key, ttl=ttl, in_progress_expiry=_IN_PROGRESS_EXPIRY, when_busy="skip")

    async with contextlib.AsyncExitStack() as stack:
        user = await stack.enter_async_context(claim(f"nudge:{wave.name}:{user_id}:{period}"))
        manager = (
            await stack.enter_async_context(claim(f"nudge-manager:{wave.name}:{user_id}:{period}"))
            if escalate
            else None
        )
        wants_manager = manager is not None and manager.acquired
        if not user.acquired and not wants_manager:
            report.skipped += 1
            return
        contact = await mail.contact(user_id)
        if contact is None or contact.address is None:
            for run in (user, manager):
                if run is not None:
                    await run.complete({"skipped": "no mailbox"}, ttl=ttl)
            report.skipped += 1
            return
        if user.acquired:
            await mail.send(compose_nudge(contact, wave.name))
            await user.complete({"sent": True}, ttl=ttl)
            report.sent.append(user_id)
        if manager is not None and wants_manager:
            if contact.manager_address is None:
                await manager.complete({"skipped": "no manager"}, ttl=ttl)
                return
            await mail.send(compose_manager_nudge(contact, wave.name, days))
            await manager.complete({"sent": True}, ttl=ttl)
            report.escalated.append(user_id)


async def _first_nudge(kv: AsyncKeyValuePort, wave: str, user_id: str, now: datetime) -> datetime:
    key = f"{wave}:{user_id}"
    stored = await kv.get(NUDGES_NAMESPACE, key)
    if stored is None:
        try:
            await kv.put(NUDGES_NAMESPACE, key, {"first": now.isoformat()}, if_absent=True)
            return now
        except ConcurrencyError:
            stored = await kv.get(NUDGES_NAMESPACE, key)
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
        from shared.graph.users_json import find_user_json, get_manager_json

        user = await find_user_json(
            self._client, user_id, select=("id", "displayName", "mail", "userPrincipalName")
        )
        if user is None:
            return None
        manager = await get_manager_json(self._client, user_id, select=("id", "displayName", "mail"))

        def text(found: dict[str, object] | None, name: str) -> str | None:
            value = found.get(name) if found is not None else None
            return value if isinstance(value, str) else None

        return Contact(
            user_id,
            text(user, "displayName") or user_id,
            text(user, "mail"),
            text(manager, "displayName"),
            text(manager, "mail"),
        )

    async def send(self, message: MailMessage) -> None:
        from shared.graph.mail import send_mail

        await send_mail(self._client, self._sender, message)
