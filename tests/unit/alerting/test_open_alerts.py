"""The open alerts of each wave: one per key, resolved by key or id, never lost to a concurrent write."""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.alerting import ALERTS_OPEN_NAMESPACE, Alert, list_open_alerts, open_alert, resolve_open_alert
from shared.errors import InvalidPayloadError
from shared.rollout.lifecycle import open_critical_alerts
from shared.state.memory import MemoryKeyValueStore
from tests.aio import aio

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _alert(key: str, severity: Any = "critical") -> Alert:
    return Alert(key=key, severity=severity, summary=f"{key} happened", source="test", occurred_at=AT)


def test_an_alert_is_open_once_per_key_until_resolved() -> None:
    kv = MemoryKeyValueStore()
    assert (
        asyncio.run(open_alert(aio(kv), "pilot", _alert("sync:pilot"), alert_id="alert-1", now=lambda: AT))
        is True
    )
    assert (
        asyncio.run(open_alert(aio(kv), "pilot", _alert("sync:pilot"), alert_id="alert-2", now=lambda: AT))
        is False
    )
    assert (
        asyncio.run(
            open_alert(aio(kv), "pilot", _alert("other", "medium"), alert_id="alert-3", now=lambda: AT)
        )
        is True
    )
    [first, second] = asyncio.run(list_open_alerts(aio(kv), "pilot"))
    assert (first.id, first.key, first.severity) == ("alert-1", "sync:pilot", "critical")
    assert first.opened_at == "2026-12-01T09:00:00Z"
    assert (second.id, second.severity) == ("alert-3", "medium")
    # the gate counts only the critical one; other waves are unaffected
    assert asyncio.run(open_critical_alerts(aio(kv), "pilot")) == ["alert-1"]
    assert asyncio.run(open_critical_alerts(aio(kv), "finance-hr")) == []
    # resolved by key, then by id; resolving again finds nothing
    resolved = asyncio.run(resolve_open_alert(aio(kv), "pilot", key="sync:pilot"))
    assert resolved is not None
    assert resolved.id == "alert-1"
    assert asyncio.run(resolve_open_alert(aio(kv), "pilot", key="sync:pilot")) is None
    assert asyncio.run(open_critical_alerts(aio(kv), "pilot")) == []
    assert asyncio.run(resolve_open_alert(aio(kv), "pilot", alert_id="alert-3")) is not None
    assert asyncio.run(list_open_alerts(aio(kv), "pilot")) == []


def test_resolving_needs_a_key_or_an_id() -> None:
    with pytest.raises(InvalidPayloadError, match="key or id"):
        asyncio.run(resolve_open_alert(aio(MemoryKeyValueStore()), "pilot"))


def test_a_malformed_record_is_an_error_naming_it() -> None:
    kv = MemoryKeyValueStore()
    kv.put(ALERTS_OPEN_NAMESPACE, "pilot", {"open": "yes"})
    with pytest.raises(InvalidPayloadError) as info:
        asyncio.run(list_open_alerts(aio(kv), "pilot"))
    assert "alerts-open/pilot.open" in str(info.value.errors)


def test_an_alert_opened_while_another_is_being_opened_is_kept() -> None:
    # GIVEN another worker that opens its alert between this worker's read and write
    class RacedKeyValueStore(MemoryKeyValueStore):
        raced = False

        def put(self, namespace: str, key: str, value: Any, **conditions: Any) -> str:
            if not self.raced:
                self.raced = True
                # the other worker runs on its own thread (and event loop) in the middle of this put
                theirs = open_alert(
                    aio(self), "pilot", _alert("theirs"), alert_id="alert-theirs", now=lambda: AT
                )
                with concurrent.futures.ThreadPoolExecutor(1) as other:
                    other.submit(asyncio.run, theirs).result()
            return super().put(namespace, key, value, **conditions)

    kv = RacedKeyValueStore()
    # WHEN this worker opens its own
    assert (
        asyncio.run(open_alert(aio(kv), "pilot", _alert("ours"), alert_id="alert-ours", now=lambda: AT))
        is True
    )
    # THEN both are open
    assert [a.id for a in asyncio.run(list_open_alerts(aio(kv), "pilot"))] == ["alert-theirs", "alert-ours"]


def test_past_the_cap_the_oldest_non_critical_alerts_go_never_a_critical_one() -> None:
    kv = MemoryKeyValueStore()
    asyncio.run(open_alert(aio(kv), "pilot", _alert("first-critical"), alert_id="alert-c", now=lambda: AT))
    for n in range(120):
        asyncio.run(
            open_alert(aio(kv), "pilot", _alert(f"noise-{n}", "low"), alert_id=f"alert-{n}", now=lambda: AT)
        )
    items = asyncio.run(list_open_alerts(aio(kv), "pilot"))
    assert len(items) == 100
    assert items[0].id == "alert-c"
    assert asyncio.run(open_critical_alerts(aio(kv), "pilot")) == ["alert-c"]
    assert items[-1].id == "alert-119"
