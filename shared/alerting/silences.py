"""Silences: the plan's (``alerting.silences``) and those added at run time (``waveguard silence``).

Run-time silences live in ``wgstate``, namespace ``alert-silences``, one record per silence id; an
expired one stays listed (``expired``) until removed, so what was muted and when stays visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.config import AlertingConfig, Matcher
from shared.errors import InvalidPayloadError, NotFoundError
from shared.state import AsyncKeyValuePort, iso, parse_iso

__all__ = ["NAMESPACE", "StoredSilence", "active_silences", "add_silence", "expire_silence", "list_silences"]

NAMESPACE: Final = "alert-silences"


@dataclass(frozen=True, slots=True)
class StoredSilence:
    """A silence added at run time."""

    id: str
    matchers: Sequence[Matcher]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.ends_at),
            "comment": self.comment,
            "createdBy": self.created_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredSilence:
        starts, ends = parse_iso(data.get("startsAt")), parse_iso(data.get("endsAt"))
        if starts is None or ends is None:
            raise InvalidPayloadError.for_field("silence", "a stored silence lacks its times")
        return cls(
            str(data["id"]),
            tuple(Matcher.parse(m) for m in data.get("matchers") or []),
            starts,
            ends,
            str(data.get("comment") or ""),
            str(data.get("createdBy") or ""),
        )


async def list_silences(kv: AsyncKeyValuePort) -> list[StoredSilence]:
    """Every run-time silence, soonest ending first."""
    found = [StoredSilence.from_json(v) for v in await kv.values(NAMESPACE) if isinstance(v, dict)]
    return sorted(found, key=lambda s: s.ends_at)


async def active_silences(alerting: AlertingConfig, kv: AsyncKeyValuePort, now: datetime) -> list[Any]:
    """The plan's silences and the run-time ones whose window holds ``now``."""
    stored = [s for s in await list_silences(kv) if s.starts_at <= now < s.ends_at]
    return [*(s for s in alerting.silences if now < s.ends_at), *stored]


async def add_silence(
    kv: AsyncKeyValuePort,
    matchers: Sequence[str],
    *,
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    created_by: str,
) -> StoredSilence:
    """Record a silence.

    Raises:
        InvalidPayloadError: no matcher, a matcher that does not parse, an empty comment, or an end
            not after the start (the error names the field).
    """
    if not matchers:
        raise InvalidPayloadError.for_field(
            "matchers", "give at least one matcher, e.g. alertname=RiskySignIn"
        )
    parsed = []
    for index, text in enumerate(matchers):
        try:
            parsed.append(Matcher.parse(text))
        except ValueError as exc:
            raise InvalidPayloadError.for_field(f"matchers[{index}]", str(exc)) from None
    if not comment.strip():
        raise InvalidPayloadError.for_field("comment", "say why the alerts are muted")
    if ends_at <= starts_at:
        raise InvalidPayloadError.for_field("endsAt", "the silence must end after it starts")
    silence = StoredSilence(
        f"silence-{uuid.uuid4().hex[:12]}", tuple(parsed), starts_at, ends_at, comment, created_by
    )
    await kv.put(NAMESPACE, silence.id, silence.to_json())
    return silence


async def expire_silence(kv: AsyncKeyValuePort, silence_id: str, *, now: datetime) -> StoredSilence:
    """End a silence now.

    Raises:
        NotFoundError: no silence has that id.
    """
    stored = await kv.get(NAMESPACE, silence_id)
    if stored is None or not isinstance(stored.value, dict):
        raise NotFoundError(f"no silence {silence_id!r}", field="silence")
    silence = StoredSilence.from_json(stored.value)
    ended = StoredSilence(
        silence.id,
        silence.matchers,
        silence.starts_at,
        min(silence.ends_at, now),
        silence.comment,
        silence.created_by,
    )
    await kv.put(NAMESPACE, silence_id, ended.to_json(), if_match=stored.etag)
    return ended
