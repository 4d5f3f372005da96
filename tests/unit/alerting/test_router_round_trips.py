"""What routing one alert costs in state round trips: the inline flush of a group with no group wait
reads neither the group nor the alert's record again, and the record is read once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from shared.alerting import Alert
from shared.alerting.rate_limit import RATE_NAMESPACE
from shared.alerting.router import ACTIVE_NAMESPACE, GROUPS_NAMESPACE, Notification, RouterDeps, route_alert
from shared.config import AlertingConfig
from shared.offload import direct
from shared.queues import MemoryQueues
from shared.state import StateStores
from shared.state.memory import MemoryAuditLog, MemoryIdempotencyStore, MemoryKeyValueStore

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class CountingStore(MemoryKeyValueStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        self.reads[namespace] += 1
        return super()._read(namespace, key)


async def test_an_alert_told_at_once_reads_its_record_and_each_group_once() -> None:
    kv = CountingStore()
    stores = StateStores(
        idempotency=MemoryIdempotencyStore(clock=lambda: T0),
        kv=kv,
        audit=MemoryAuditLog(clock=lambda: T0),
        offload=direct,
    )
    got: list[Notification] = []

    async def deliver(notification: Notification) -> None:
        got.append(notification)

    alerting = AlertingConfig.model_validate(
        {
            "route": {
                "receiver": "pager",
                "groupBy": ["alertname", "user"],
                "groupWaitSeconds": 0,
                "routes": [
                    {"receiver": "pager", "matchers": ["severity=critical"], "continue": True},
                    {"receiver": "hook", "matchers": ["alertname=~.+"]},
                ],
            },
            "receivers": [
                {"name": "pager", "pagerduty": {"routingKey": "k" * 32, "url": "http://127.0.0.1:9/pd"}},
                {"name": "hook", "webhook": {"url": "http://127.0.0.1:9/hook"}},
            ],
        }
    )
    deps = RouterDeps(alerting, stores.aio, MemoryQueues(), deliver, lambda: T0)
    alert = Alert(
        key="risk:user:u1",
        severity="critical",
        summary="u1 is at high risk",
        source="test",
        labels={"alertname": "UserAtRisk", "user": "u1@contoso.com"},
        occurred_at=T0,
    )
    outcome = await route_alert(deps, alert, correlation_id="c1")
    assert len(outcome.groups) == 2
    assert sorted(n.receiver.name for n in got) == ["hook", "pager"]
    assert got[0].alerts[0]["summary"] == "u1 is at high risk"  # described from the record in hand
    assert kv.reads[ACTIVE_NAMESPACE] == 1
    assert kv.reads[GROUPS_NAMESPACE] == 2  # one per group: written, flushed and settled on that read
    assert kv.reads[RATE_NAMESPACE] == 2  # each receiver's window once; then remembered
