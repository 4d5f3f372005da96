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
    "Status",
    "alert_envelope",
    "raise_alert",
]

Severity = Literal["critical", "high", "medium", "low", "info"]
Status = Literal["firing", "resolved"]
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
    status: Status = "firing"

    def __post_init__(self) -> None:
        if not self.key or not self.summary or not self.source:
            raise ValueError("an alert needs a key, a summary and a source")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        if self.status not in ("firing", "resolved"):
            raise ValueError(f"status must be firing or resolved, got {self.status!r}")

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
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The alert a queue payload holds.

        Raises:
            InvalidPayloadError: a field is missing or has the wrong type (the error names it).
        """
        from shared.errors import InvalidPayloadError
        from shared.state import parse_iso

        def text(name: str) -> str:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidPayloadError.for_field(f"payload.{name}", "expected a non-empty string")
            return value

        labels, details = data.get("labels", {}), data.get("details", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise InvalidPayloadError.for_field("payload.labels", "expected an object of strings")
        if not isinstance(details, dict):
            raise InvalidPayloadError.for_field("payload.details", "expected an object")
        occurred = parse_iso(data.get("occurredAt")) or _utcnow()
        try:
            return cls(
                key=text("key"),
                severity=text("severity"),  # type: ignore[arg-type]
                summary=text("summary"),
                source=text("source"),
                labels=dict(labels),
                details=dict(details),
                occurred_at=occurred,
                status=data.get("status", "firing"),
            )
        except ValueError as exc:
            raise InvalidPayloadError.for_field("payload", str(exc)) from None

    def routing_labels(self) -> dict[str, str]:
        """The labels the router matches on: the alert's own plus ``alertname`` and ``severity``."""
        return {
            "severity": self.severity,
            **dict(self.labels),
            "alertname": self.labels.get("alertname", self.key),
        }


def alert_envelope(alert: Alert, *, period: timedelta = DEFAULT_DEDUPE_PERIOD) -> Envelope:
    """The ``alerts`` queue message for ``alert``; its id is derived from the key, the status and the
    period (a resolution is a message of its own)."""
    seconds = max(1, int(period.total_seconds()))
    bucket = int(alert.occurred_at.timestamp()) // seconds
    marker = "" if alert.status == "firing" else "\nresolved"
    digest = hashlib.sha256(f"{alert.key}\n{seconds}\n{bucket}{marker}".encode()).hexdigest()[:32]
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
