"""How far one hire has got: the steps done so far, checkpointed on the hire's claim
(``onboarding:<envelope id>``, see ``shared.state.once``).

Each step of onboarding (find the user, issue and mail the TAP, join the wave group) is recorded
here, and checkpointed before an effect that must not happen twice (sending the e-mail), so a
retried or re-delivered envelope resumes where the last attempt stopped and never repeats an
effect. The audit entries of the steps wait here (``audits``) until they are written together.
Stored as camelCase JSON (``to_dict``); unknown keys and wrong types in a stored record are ignored
(``from_dict``), never trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["LEGACY_HIRES_NAMESPACE", "DraftRecord", "HireProgress", "PendingAudit", "TapRecord"]

log = logging.getLogger(__name__)

# Where versions before progress moved onto the claim kept it (state namespace, key: envelope id);
# read only when a claim such a worker left is taken over.
LEGACY_HIRES_NAMESPACE: Final = "hires"
# Audit entries one hire may keep waiting (a few steps; a replaced TAP adds one more each time).
MAX_PENDING_AUDITS: Final = 40


@dataclass(slots=True)
class TapRecord:
    """The TAP issued for the hire (never its secret value)."""

    method_id: str
    created_at: str | None
    starts_at: str | None
    expires_at: str | None
    is_usable_once: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "methodId": self.method_id,
            "createdAt": self.created_at,
            "startsAt": self.starts_at,
            "expiresAt": self.expires_at,
            "isUsableOnce": self.is_usable_once,
        }

    @classmethod
    def from_dict(cls, raw: object) -> TapRecord | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("methodId"), str):
            return None
        return cls(
            method_id=raw["methodId"],
            created_at=_text_or_none(raw.get("createdAt")),
            starts_at=_text_or_none(raw.get("startsAt")),
            expires_at=_text_or_none(raw.get("expiresAt")),
            is_usable_once=bool(raw.get("isUsableOnce", False)),
        )


@dataclass(slots=True)
class DraftRecord:
    """The saved (not yet sent) TAP e-mail in the sender's mailbox, and the TAP it carries."""

    id: str
    method_id: str | None = None
    saved_at: str | None = None  # when it was saved: its delivery is audited at this time

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "methodId": self.method_id, "savedAt": self.saved_at}

    @classmethod
    def from_dict(cls, raw: object) -> DraftRecord | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return None
        method, saved = raw.get("methodId"), raw.get("savedAt")
        return cls(
            id=raw["id"],
            method_id=method if isinstance(method, str) else None,
            saved_at=saved if isinstance(saved, str) else None,
        )


@dataclass(slots=True)
class PendingAudit:
    """An audit entry for a step already taken, not yet written (``at``: when the step happened)."""

    action: str
    target: str
    reason: str
    at: str
    details: dict[str, Any]
    id: str  # the entry's id, fixed when the step is taken

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "at": self.at,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, raw: object) -> PendingAudit | None:
        if not isinstance(raw, dict):
            return None
        fields = [raw.get(name) for name in ("action", "target", "reason", "at", "id")]
        details = raw.get("details")
        if not all(isinstance(f, str) and f for f in fields) or not isinstance(details, dict):
            return None
        action, target, reason, at, entry_id = (str(f) for f in fields)
        return cls(action, target, reason, at, dict(details), entry_id)


@dataclass(slots=True)
class HireProgress:
    """The steps one hire has been through (see the module docstring)."""

    first_seen_at: str
    attempts: int = 0  # lookups of the user so far (provisioning re-checks)
    last_check_at: str | None = None
    next_check_at: str | None = None
    user_id: str | None = None
    wave: str | None = None
    group_id: str | None = None
    group_added: bool = False
    tap_refused: list[str] | None = None  # why no TAP may be issued (an existing account)
    tap_held_alerted: bool = False  # HireTapHeld raised (no manager to deliver to)
    tap: TapRecord | None = None
    draft: DraftRecord | None = None
    mail_attempts: int = 0
    mail_sent: bool = False
    mail_sent_at: str | None = None
    manager_id: str | None = None
    status: Literal["not-provisioned"] | None = None
    gave_up_at: str | None = None
    audits: list[PendingAudit] = field(default_factory=list)  # steps' entries not written yet

    def to_dict(self) -> dict[str, Any]:
        """The stored record: set fields only, camelCase."""
        out: dict[str, Any] = {"firstSeenAt": self.first_seen_at, "attempts": self.attempts}
        optional: dict[str, Any] = {
            "lastCheckAt": self.last_check_at,
            "nextCheckAt": self.next_check_at,
            "userId": self.user_id,
            "wave": self.wave,
            "groupId": self.group_id,
            "groupAdded": self.group_added or None,
            "tapRefused": self.tap_refused,
            "tapHeldAlerted": self.tap_held_alerted or None,
            "tap": self.tap.to_dict() if self.tap is not None else None,
            "draft": self.draft.to_dict() if self.draft is not None else None,
            "mailAttempts": self.mail_attempts or None,
            "mailSent": self.mail_sent or None,
            "mailSentAt": self.mail_sent_at,
            "managerId": self.manager_id,
            "status": self.status,
            "gaveUpAt": self.gave_up_at,
            "audits": [a.to_dict() for a in self.audits] or None,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_dict(cls, raw: object, *, first_seen_at: str) -> HireProgress:
        """The progress in a stored record (``first_seen_at`` when the record has none)."""
        value: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}

        def text(name: str) -> str | None:
            item = value.get(name)
            return item if isinstance(item, str) else None

        def number(name: str) -> int:
            item = value.get(name)
            if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item < 2**31:
                return 0
            return int(item)

        refused = value.get("tapRefused")
        raw_audits = value.get("audits")
        audits = [PendingAudit.from_dict(a) for a in raw_audits] if isinstance(raw_audits, list) else []
        return cls(
            first_seen_at=text("firstSeenAt") or first_seen_at,
            attempts=number("attempts"),
            last_check_at=text("lastCheckAt"),
            next_check_at=text("nextCheckAt"),
            user_id=text("userId"),
            wave=text("wave"),
            group_id=text("groupId"),
            group_added=value.get("groupAdded") is True,
            tap_refused=[str(r) for r in refused] if isinstance(refused, list) else None,
            tap_held_alerted=value.get("tapHeldAlerted") is True,
            tap=TapRecord.from_dict(value.get("tap")),
            draft=DraftRecord.from_dict(value.get("draft")),
            mail_attempts=number("mailAttempts"),
            mail_sent=value.get("mailSent") is True,
            mail_sent_at=text("mailSentAt"),
            manager_id=text("managerId"),
            status="not-provisioned" if value.get("status") == "not-provisioned" else None,
            gave_up_at=text("gaveUpAt"),
            audits=_bounded([a for a in audits if a is not None]),
        )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bounded(audits: list[PendingAudit]) -> list[PendingAudit]:
    """The pending entries a stored record may bring back (a record that held more was not ours)."""
    if len(audits) > MAX_PENDING_AUDITS:
        log.warning(
            "hire progress held %d pending audit entries; the oldest beyond %d are dropped",
            len(audits),
            MAX_PENDING_AUDITS,
        )
    return audits[-MAX_PENDING_AUDITS:]
