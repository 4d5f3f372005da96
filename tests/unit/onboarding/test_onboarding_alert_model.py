"""Alerts: a validated value, enqueued on `alerts` with an id that dedupes repeats within a period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.alerting import Alert, alert_envelope, raise_alert
from shared.envelope import Envelope
from shared.names import ALERTS
from tests.aio import aio

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []

    def send(self, queue_name: str, envelope: Envelope, **_: Any) -> str:
        self.sent.append((queue_name, envelope))
        return str(len(self.sent))


def _alert(key: str = "onboarding:abc:NotFoundError", at: datetime = AT) -> Alert:
    return Alert(
        key=key,
        severity="high",
        summary="New hire E1001 never appeared in Entra",
        source="waveguard/onboarding",
        labels={"alertname": "HireNotProvisioned"},
        details={"employeeId": "E1001"},
        occurred_at=at,
    )


def test_raise_alert_enqueues_an_alert_envelope_on_the_alerts_queue() -> None:
    sender = RecordingSender()
    envelope = asyncio.run(raise_alert(aio(sender), _alert()))
    assert sender.sent == [(ALERTS, envelope)]
    assert envelope.type == "alert"
    assert envelope.payload == {
        "key": "onboarding:abc:NotFoundError",
        "severity": "high",
        "summary": "New hire E1001 never appeared in Entra",
        "source": "waveguard/onboarding",
        "labels": {"alertname": "HireNotProvisioned"},
        "details": {"employeeId": "E1001"},
        "occurredAt": "2026-12-01T08:00:00Z",
        "status": "firing",
    }


def test_same_key_in_the_same_period_is_the_same_message() -> None:
    first = alert_envelope(_alert(at=AT))
    again = alert_envelope(_alert(at=AT + timedelta(minutes=30)))
    assert first.id == again.id


def test_a_later_period_or_another_key_is_a_new_message() -> None:
    assert alert_envelope(_alert(at=AT)).id != alert_envelope(_alert(at=AT + timedelta(hours=5))).id
    assert alert_envelope(_alert()).id != alert_envelope(_alert(key="other")).id
    hourly = timedelta(hours=1)
    assert (
        alert_envelope(_alert(at=AT), period=hourly).id
        != alert_envelope(_alert(at=AT + timedelta(minutes=61)), period=hourly).id
    )


@pytest.mark.parametrize(
    "change",
    [{"key": ""}, {"summary": ""}, {"severity": "urgent"}, {"occurred_at": datetime(2026, 12, 1)}],
)
def test_an_incomplete_alert_is_refused(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "key": "k",
        "severity": "low",
        "summary": "s",
        "source": "src",
        "occurred_at": AT,
        **change,
    }
    with pytest.raises(ValueError, match=r"key|severity|timezone"):
        Alert(**fields)
