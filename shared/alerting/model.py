"""The alert every worker raises: a small value, enqueued on ``alerts`` for the router to deliver."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.envelope import Envelope, format_timestamp
from shared.names import ALERTS

if TYPE_CHECKING:
    from shared.queues import Sender

__all__ = [
    "ALERT_ENVELOPE_TYPE",
    "DEFAULT_DEDUPE_PERIOD",
    "SEVERITIES",
    "Alert",
    "Severity",
    "alert_envelope",
    "raise_alert",
]

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: Final[tuple[Severity, ...]] = ("critical", "high", "medium", "low", "info")
ALERT_ENVELOPE_TYPE: Final = "alert"
# The same alert (key) raised again within one period is the same queue message id, so the
# router's idempotency drops the repeat; a later period is a new page (a repeat reminder).
DEFAULT_DEDUPE_PERIOD: Final = timedelta(hours=4)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person should know: ``key`` dedupes repeats; labels route, details explain.

    Never put secrets, TAPs or personal data beyond identifiers into labels or details.
    """

    key: str
    severity: Severity
    summary: str
    source: str
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        if not self.key or not self.summary or not self.source:
            raise ValueError("an alert needs a key, a summary and a source")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")

    def to_dict(self) -> dict[str, Any]:
        """The queue payload (camelCase)."""
        return {
            "key": self.key,
            "severity": self.severity,
            "summary": self.summary,
            "source": self.source,
            "labels": dict(self.labels),
            "details": dict(self.details),
            "occurredAt": format_timestamp(self.occurred_at),
        }


def alert_envelope(alert: Alert, *, period: timedelta = DEFAULT_DEDUPE_PERIOD) -> Envelope:
    """The ``alerts`` queue message for ``alert``; its id is derived from the key and the period."""
    seconds = max(1, int(period.total_seconds()))
    bucket = int(alert.occurred_at.timestamp()) // seconds
    digest = hashlib.sha256(f"{alert.key}\n{seconds}\n{bucket}".encode()).hexdigest()[:32]
    return Envelope(
        type=ALERT_ENVELOPE_TYPE, payload=alert.to_dict(), id=f"alert-{digest}", occurred_at=alert.occurred_at
    )


async def raise_alert(sender: Sender, alert: Alert, *, period: timedelta = DEFAULT_DEDUPE_PERIOD) -> Envelope:
    """Enqueue ``alert`` on the ``alerts`` queue; returns the envelope sent.

    Raises:
        InvalidPayloadError: the alert's details are not JSON-serialisable or too large.
        RetryableError: storage is unavailable (the caller's message is retried, the alert too).
    """
    envelope = alert_envelope(alert, period=period)
    await sender.send(ALERTS, envelope)
    return envelope
