"""The open alerts of each wave: what the "no open critical alert" gate reads.

A producer that knows an alert is about a wave records it here as it raises it, and resolves it
when the condition is gone (the next membership sync within the blast radius, say); an operator
can resolve one by hand (`waveguard waves resolve-alert`). One state value per wave,
``alerts-open/<wave>`` = ``{"open": [{"id", "key", "severity", "summary", "source", "openedAt"}]}``,
changed only by conditional writes so concurrent workers never drop each other's alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.alerting.model import Alert
from shared.envelope import format_timestamp
from shared.errors import InvalidPayloadError, RetryableError
from shared.state import AsyncKeyValuePort, ConcurrencyError, Versioned

__all__ = ["ALERTS_OPEN_NAMESPACE", "OpenAlert", "list_open_alerts", "open_alert", "resolve_open_alert"]

ALERTS_OPEN_NAMESPACE: Final = "alerts-open"
_ATTEMPTS: Final = 5
_MAX_OPEN: Final = 100  # per wave, beyond critical ones (each is also in the audit log and on the queue)


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert about a wave that nobody has resolved yet."""

    id: str
    key: str
    severity: str
    summary: str = ""
    source: str = ""
    opened_at: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "key": self.key,
            "severity": self.severity,
            "summary": self.summary,
            "source": self.source,
            "openedAt": self.opened_at,
        }


async def list_open_alerts(kv: AsyncKeyValuePort, wave: str) -> list[OpenAlert]:
    """The wave's open alerts, oldest first.

    Raises:
        InvalidPayloadError: the stored value is not ``{"open": [{...}, ...]}``.
        RetryableError: the store is unavailable.
    """
    return _parse(wave, await kv.get(ALERTS_OPEN_NAMESPACE, wave))


async def open_alert(
    kv: AsyncKeyValuePort,
    wave: str,
    alert: Alert,
    *,
    alert_id: str,
    now: Callable[[], datetime] | None = None,
) -> bool:
    """Record ``alert`` as open for ``wave``; False when an alert with its key is already open.

    Raises:
        InvalidPayloadError: the stored value is malformed.
        RetryableError: the store is unavailable or kept changing.
    """
    opened_at = format_timestamp((now or _utcnow)())
    entry = OpenAlert(alert_id, alert.key, alert.severity, alert.summary[:500], alert.source, opened_at)

    def change(items: list[OpenAlert]) -> list[OpenAlert] | None:
        if any(item.key == alert.key for item in items):
            return None
        return _capped([*items, entry])

    return await _update(kv, wave, change) is not None


async def resolve_open_alert(
    kv: AsyncKeyValuePort, wave: str, *, key: str | None = None, alert_id: str | None = None
) -> OpenAlert | None:
    """Remove the open alert with ``key`` or ``alert_id``; the one removed, or None when none was open.

    Raises:
        InvalidPayloadError: neither key nor id given, or the stored value is malformed.
        RetryableError: the store is unavailable or kept changing.
    """
    if not key and not alert_id:
        raise InvalidPayloadError.for_field("alert", "give the alert's key or id")
    removed: list[OpenAlert] = []

    def change(items: list[OpenAlert]) -> list[OpenAlert] | None:
        removed[:] = [i for i in items if (key and i.key == key) or (alert_id and i.id == alert_id)]
        return [i for i in items if i not in removed] if removed else None

    await _update(kv, wave, change)
    return removed[0] if removed else None


def _capped(items: list[OpenAlert]) -> list[OpenAlert]:
    """At most _MAX_OPEN, dropping the oldest non-critical ones first: a critical one is never
    dropped (it holds the wave until someone resolves it)."""
    excess = len(items) - _MAX_OPEN
    if excess <= 0:
        return items
    droppable = [i for i in items if i.severity != "critical"][:excess]
    return [i for i in items if i not in droppable]


async def _update(
    kv: AsyncKeyValuePort, wave: str, change: Callable[[list[OpenAlert]], list[OpenAlert] | None]
) -> list[OpenAlert] | None:
    """Apply ``change`` (None: nothing to write) by read, then conditional write, retried on conflict."""
    for _ in range(_ATTEMPTS):
        stored = await kv.get(ALERTS_OPEN_NAMESPACE, wave)
        changed = change(_parse(wave, stored))
        if changed is None:
            return None
        value = {"open": [item.to_dict() for item in changed]}
        try:
            if stored is None:
                await kv.put(ALERTS_OPEN_NAMESPACE, wave, value, if_absent=True)
            else:
                await kv.put(ALERTS_OPEN_NAMESPACE, wave, value, if_match=stored.etag)
        except ConcurrencyError:
            continue
        return changed
    raise RetryableError(f"the open alerts of wave {wave} kept changing", retry_after=5, wave=wave)


def _parse(wave: str, stored: Versioned | None) -> list[OpenAlert]:
    if stored is None:
        return []
    value: Any = stored.value
    items = value.get("open") if isinstance(value, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidPayloadError.for_field(
            f"{ALERTS_OPEN_NAMESPACE}/{wave}.open", "expected a list of alerts"
        )
    return [
        OpenAlert(
            id=str(i.get("id", "?")),
            key=str(i.get("key", i.get("id", "?"))),
            severity=str(i.get("severity", "")).lower(),
            summary=str(i.get("summary", "")),
            source=str(i.get("source", "")),
            opened_at=str(i.get("openedAt", "")),
        )
        for i in items
    ]


def _utcnow() -> datetime:
    return datetime.now(UTC)
