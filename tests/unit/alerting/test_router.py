"""The router's Alertmanager behaviour over in-memory stores and a recording receiver: group wait,
group interval, repeat interval, resolution, silences, inhibition, and delivery failures that lose
nothing and never notify twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerting import Alert
from shared.alerting.router import (
    FLUSH_TYPE,
    GROUPS_NAMESPACE,
    Notification,
    RouterDeps,
    flush_group,
    route_alert,
)
from shared.alerting.silences import add_silence
from shared.config import AlertingConfig
from shared.errors import RetryableError
from shared.names import ALERTS
from shared.queues import MemoryQueues
from shared.state import StateStores, build_memory_state

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Receiver:
    """Records notifications; fails the next ``fail`` deliveries."""

    got: list[Notification] = field(default_factory=list)
    fail: int = 0

    async def __call__(self, notification: Notification) -> None:
        if self.fail:
            self.fail -= 1
            raise RetryableError("receiver down")
        self.got.append(notification)


ALERTING = {
    "route": {
        "receiver": "pager",
        "groupBy": ["alertname", "wave"],
        "groupWaitSeconds": 30,
        "groupIntervalSeconds": 300,
        "repeatIntervalSeconds": 3600,
    },
    "receivers": [{"name": "pager", "pagerduty": {"routingKey": "k" * 32, "url": "http://127.0.0.1:9/pd"}}],
    "inhibitRules": [
        {
            "sourceMatchers": ["alertname=UserCompromised"],
            "targetMatchers": ["severity=high"],
            "equal": ["user"],
        }
    ],
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(clock: Clock) -> StateStores:
    return build_memory_state(clock=clock)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def queues() -> MemoryQueues:
    return MemoryQueues()


@pytest.fixture
def deps(stores: StateStores, queues: MemoryQueues, receiver: Receiver, clock: Clock) -> RouterDeps:
    return RouterDeps(AlertingConfig.model_validate(ALERTING), stores.aio, queues, receiver, clock)


def alert(key: str, *, status: str = "firing", severity: str = "critical", **labels: str) -> Alert:
    return Alert(
        key=key,
        severity=severity,  # type: ignore[arg-type]
        summary=f"{key} happened",
        source="test",
        labels={"alertname": "BreakGlassTargeted", "wave": "pilot", **labels},
        occurred_at=T0,
        status=status,  # type: ignore[arg-type]
    )


def flushes(queues: MemoryQueues) -> list[tuple[str, float | None]]:
    return [
        (e.payload["group"], delay) for q, e, delay in queues.sent if q == ALERTS and e.type == FLUSH_TYPE
    ]


async def test_alerts_that_come_together_go_out_together_after_the_group_wait(
    deps: RouterDeps, queues: MemoryQueues, receiver: Receiver, clock: Clock
) -> None:
    first = await route_alert(deps, alert("a1"), correlation_id="c1")
    clock.advance(10)
    await route_alert(deps, alert("a2"), correlation_id="c2")
    [gid] = first.groups
    # one flush scheduled, 30 s after the group was born
    assert flushes(queues) == [(gid, 30.0)]
    assert await flush_group(deps, gid, correlation_id="f0") == "not-due"
    clock.advance(20)
    assert await flush_group(deps, gid, correlation_id="f1") == "notified"
    [note] = receiver.got
    assert (note.status, [a["key"] for a in note.alerts]) == ("firing", ["a1", "a2"])
    assert note.title == "[FIRING:2] BreakGlassTargeted (wave=pilot)"
    # the same flush delivered again tells nothing new
    assert await flush_group(deps, gid, correlation_id="f1") != "notified"
    assert len(receiver.got) == 1


async def test_a_later_alert_waits_for_the_group_interval_and_firing_repeats(
    deps: RouterDeps, queues: MemoryQueues, receiver: Receiver, clock: Clock
) -> None:
    [gid] = (await route_alert(deps, alert("a1"), correlation_id="c1")).groups
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    clock.advance(60)
    await route_alert(deps, alert("a3"), correlation_id="c3")
    # next flush: 300 s after the last notification, not before
    assert flushes(queues)[-1] == (gid, 240.0)
    clock.advance(240)
    assert await flush_group(deps, gid, correlation_id="f2") == "notified"
    assert [a["key"] for a in receiver.got[-1].alerts] == ["a1", "a3"]
    clock.advance(3600)
    assert await flush_group(deps, gid, correlation_id="f3") == "notified"  # the repeat reminder
    assert len(receiver.got) == 3


async def test_resolution_is_told_then_the_group_is_forgotten(
    deps: RouterDeps, stores: StateStores, receiver: Receiver, clock: Clock
) -> None:
    [gid] = (await route_alert(deps, alert("a1"), correlation_id="c1")).groups
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    clock.advance(400)
    await route_alert(deps, alert("a1", status="resolved"), correlation_id="c2")
    assert await flush_group(deps, gid, correlation_id="f2") == "notified"
    assert receiver.got[-1].status == "resolved"
    assert stores.kv.get(GROUPS_NAMESPACE, gid) is None
    # a resolution for a group nobody was told about creates nothing
    assert (await route_alert(deps, alert("zz", status="resolved"), correlation_id="c3")).groups
    assert len(receiver.got) == 2


async def test_a_receiver_that_is_down_loses_nothing_and_never_notifies_twice(
    deps: RouterDeps, receiver: Receiver, clock: Clock
) -> None:
    [gid] = (await route_alert(deps, alert("a1"), correlation_id="c1")).groups
    clock.advance(30)
    receiver.fail = 2
    for attempt in range(2):
        with pytest.raises(RetryableError):
            await flush_group(deps, gid, correlation_id=f"f{attempt}")
    assert await flush_group(deps, gid, correlation_id="f2") == "notified"
    assert await flush_group(deps, gid, correlation_id="f3") != "notified"
    assert len(receiver.got) == 1


async def test_silenced_and_inhibited_alerts_are_audited_not_delivered(
    deps: RouterDeps, stores: StateStores, receiver: Receiver
) -> None:
    await add_silence(
        stores.aio.kv, ["wave=finance"], starts_at=T0, ends_at=T0 + timedelta(hours=1),
        comment="maintenance", created_by="ops",
    )  # fmt: skip
    silenced = await route_alert(deps, alert("s1", wave="finance"), correlation_id="c1")
    assert silenced.outcome == "silenced"
    await route_alert(deps, alert("c1", alertname="UserCompromised", user="u1"), correlation_id="c2")
    muted = await route_alert(
        deps, alert("r1", alertname="RiskySignIn", severity="high", user="u1"), correlation_id="c3"
    )
    other = await route_alert(
        deps, alert("r2", alertname="RiskySignIn", severity="high", user="u2"), correlation_id="c4"
    )
    assert (muted.outcome, other.outcome) == ("inhibited", "grouped")
    actions = sorted(e.action for e in stores.audit.list())
    assert actions == ["alert.inhibited", "alert.silenced"]
