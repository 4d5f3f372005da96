"""The router's Alertmanager behaviour over in-memory stores and a recording receiver: group wait,
group interval, repeat interval, resolution, silences, inhibition, and delivery failures that lose
nothing and never notify twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerting import Alert
from shared.alerting.flush import flush_group
from shared.alerting.router import (
    ACTIVE_NAMESPACE,
    FLUSH_TYPE,
    GROUPS_NAMESPACE,
    Notification,
    RouterDeps,
    alert_id,
    route_alert,
)
from shared.alerting.silences import add_silence
from shared.config import AlertingConfig
from shared.errors import PermanentError, RetryableError
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
    refuse: int = 0

    async def __call__(self, notification: Notification) -> None:
        if self.fail:
            self.fail -= 1
            raise RetryableError("receiver down")
        if self.refuse:
            self.refuse -= 1
            raise PermanentError("receiver refused with 400")
        self.got.append(notification)


ALERTING = {
    "route": {
        "receiver": "pager",
        "groupBy": ["alertname", "wave"],
        "groupWaitSeconds": 30,
        "groupIntervalSeconds": 300,
        "repeatIntervalSeconds": 3600,
    },
    "receivers": [
        {"name": "pager", "pagerduty": {"routingKey": "k" * 32, "url": "http://127.0.0.1:9/pd"}},
        {"name": "teams-ops", "teams": {"webhookUrl": "http://127.0.0.1:9/teams"}},
    ],
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
    # the group interval has passed: the resolution is told at once, with no queue hop
    await route_alert(deps, alert("a1", status="resolved"), correlation_id="c2")
    assert await flush_group(deps, gid, correlation_id="f2") == "gone"
    assert receiver.got[-1].status == "resolved"
    assert stores.kv.get(GROUPS_NAMESPACE, gid) is None
    # a resolution for a group nobody was told about creates nothing
    early = Alert(**{**_fields(alert("zz")), "status": "resolved", "occurred_at": T0 + timedelta(minutes=9)})
    assert (await route_alert(deps, early, correlation_id="c3")).outcome == "grouped"
    # its firing, older, arrives after it (queues keep no order): recognised as stale, nothing fires
    assert (await route_alert(deps, alert("zz"), correlation_id="c4")).outcome == "stale"
    assert len(receiver.got) == 2


async def test_a_receiver_that_is_down_loses_nothing_pages_operations_elsewhere_and_never_notifies_twice(
    deps: RouterDeps, receiver: Receiver, clock: Clock, queues: MemoryQueues, stores: StateStores
) -> None:
    [gid] = (await route_alert(deps, alert("a1"), correlation_id="c1")).groups
    clock.advance(30)
    receiver.fail = 3
    for attempt in range(3):
        # the message is not failed (no poison): the flush is rescheduled with growing back-off
        assert await flush_group(deps, gid, correlation_id=f"f{attempt}") == "delivery-failed"
        group = stores.kv.get(GROUPS_NAMESPACE, gid)
        assert group is not None
        assert group.value["deliveryFailures"] == attempt + 1
        delays = [d for _, e, d in queues.sent if e.type == FLUSH_TYPE]
        assert 13 * 2**attempt <= delays[-1] <= 17 * 2**attempt
        assert await flush_group(deps, gid, correlation_id="early") == "not-due"
        clock.advance(delays[-1])
    # the third failure raised AlertDeliveryFailed, which avoids the failing receiver
    [failed] = [
        e for _, e, _ in queues.sent if e.type == "alert" and e.payload["key"] == "alert-delivery:pager"
    ]
    outage = Alert.from_dict(failed.payload)
    assert outage.labels["failedReceiver"] == "pager"
    assert outage.severity == "critical"
    routed = await route_alert(deps, outage, correlation_id="c-outage")
    [outage_group] = routed.groups
    outage_record = stores.kv.get(GROUPS_NAMESPACE, outage_group)
    assert outage_record is not None
    assert outage_record.value["receiver"] == "teams-ops"
    # the receiver is back: told once, the failure count cleared, the outage alert resolved
    assert await flush_group(deps, gid, correlation_id="f3") == "notified"
    assert await flush_group(deps, gid, correlation_id="f4") != "notified"
    assert len(receiver.got) == 1
    group = stores.kv.get(GROUPS_NAMESPACE, gid)
    assert group is not None
    assert "deliveryFailures" not in group.value
    resolved = [
        e for _, e, _ in queues.sent if e.type == "alert" and e.payload["key"] == "alert-delivery:pager"
    ]
    assert [e.payload["status"] for e in resolved] == ["firing", "resolved"]


async def test_a_refusing_receiver_is_retried_too_and_nothing_is_lost(
    deps: RouterDeps, receiver: Receiver, clock: Clock
) -> None:
    [gid] = (await route_alert(deps, alert("a1"), correlation_id="c1")).groups
    clock.advance(30)
    receiver.refuse = 1
    assert await flush_group(deps, gid, correlation_id="f1") == "delivery-failed"
    clock.advance(20)
    assert await flush_group(deps, gid, correlation_id="f2") == "notified"
    assert [n.alerts[0]["key"] for n in receiver.got] == ["a1"]


async def test_a_storm_stays_within_the_receivers_rate_limit_and_is_folded_into_digests(
    deps: RouterDeps, receiver: Receiver, clock: Clock, queues: MemoryQueues
) -> None:
    limited = _with_receiver_limit(deps, count=2, per_seconds=60)
    groups = []
    for n in range(40):  # forty groups (one per wave) at once
        groups += (await route_alert(limited, alert(f"a{n}", wave=f"w{n}"), correlation_id=f"c{n}")).groups
    clock.advance(30)
    outcomes = [await flush_group(limited, gid, correlation_id=f"f-{gid}") for gid in groups]
    assert outcomes[:2] == ["notified", "notified"]
    assert set(outcomes[2:]) == {"rate-limited"}
    # once the window (a minute, plus a margin for the network) has passed, the next flush takes the
    # whole backlog with it: one digest
    clock.advance(60)
    assert await flush_group(limited, groups[2], correlation_id="d0") == "rate-limited"
    clock.advance(4)
    assert await flush_group(limited, groups[2], correlation_id="d1") == "digest"
    digest = receiver.got[-1]
    assert digest.digest_of == 38
    assert len(digest.firing) == 38
    assert "storm digest" in digest.title
    # every folded group was marked told: their own rescheduled flushes send nothing
    later = [await flush_group(limited, gid, correlation_id=f"g-{gid}") for gid in groups[3:]]
    assert "notified" not in later
    assert "digest" not in later
    assert len(receiver.got) == 3


async def test_an_acknowledged_alert_is_not_repeated_but_an_escalation_is_told(
    deps: RouterDeps, receiver: Receiver, clock: Clock, stores: StateStores
) -> None:
    [gid] = (await route_alert(deps, alert("a1", severity="high"), correlation_id="c1")).groups
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    record = stores.kv.get(ACTIVE_NAMESPACE, alert_id("a1"))
    assert record is not None
    stores.kv.put(ACTIVE_NAMESPACE, alert_id("a1"), {**record.value, "ack": {"by": "ops", "at": "now"}})
    clock.advance(3600)
    assert await flush_group(deps, gid, correlation_id="f2") == "unchanged"  # acked: no repeat
    await route_alert(deps, alert("a1", severity="critical"), correlation_id="c2")  # escalated: told at once
    assert len(receiver.got) == 2
    assert receiver.got[-1].severity == "critical"


def _with_receiver_limit(deps: RouterDeps, *, count: int, per_seconds: float) -> RouterDeps:
    config = dict(ALERTING)
    config["receivers"] = [
        {**r, "rateLimit": {"count": count, "perSeconds": per_seconds}} if r["name"] == "pager" else r
        for r in ALERTING["receivers"]  # type: ignore[union-attr]
    ]
    return RouterDeps(
        AlertingConfig.model_validate(config), deps.state, deps.queues, deps.deliver, deps.clock
    )


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


async def test_a_retried_fired_that_arrives_after_its_resolution_is_dropped_as_stale(
    deps: RouterDeps, receiver: Receiver, clock: Clock, stores: StateStores
) -> None:
    fired = alert("m1")
    [gid] = (await route_alert(deps, fired, correlation_id="c1")).groups
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    resolved = Alert(**{**_fields(fired), "status": "resolved", "occurred_at": T0 + timedelta(minutes=20)})
    await route_alert(deps, resolved, correlation_id="c2")
    late = await route_alert(deps, fired, correlation_id="c3")  # the sender's retry of the Fired
    assert late.outcome == "stale"
    clock.advance(300)
    await flush_group(deps, gid, correlation_id="f2")
    assert [n.status for n in receiver.got] == ["firing", "resolved"]
    assert stores.kv.get(GROUPS_NAMESPACE, gid) is None


def _fields(a: Alert) -> dict[str, object]:
    return {
        "key": a.key,
        "severity": a.severity,
        "summary": a.summary,
        "source": a.source,
        "labels": a.labels,
        "details": a.details,
        "occurred_at": a.occurred_at,
        "status": a.status,
    }


async def test_a_resolution_with_another_severity_resolves_the_groups_the_alert_was_told_in(
    deps: RouterDeps, receiver: Receiver, clock: Clock, stores: StateStores
) -> None:
    config = {
        **ALERTING,
        "route": {
            **ALERTING["route"],
            "routes": [{"receiver": "teams-ops", "matchers": ["severity=critical"]}],
        },
    }  # type: ignore[dict-item]
    deps = RouterDeps(
        AlertingConfig.model_validate(config), deps.state, deps.queues, deps.deliver, deps.clock
    )
    fired = alert("r1", severity="critical")
    [gid] = (await route_alert(deps, fired, correlation_id="c1")).groups
    record = stores.kv.get(GROUPS_NAMESPACE, gid)
    assert record is not None
    assert record.value["receiver"] == "teams-ops"
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    # the sender resolves it as "info" (which alone would route elsewhere): the same group hears it
    resolved = Alert(
        **{
            **_fields(fired),
            "severity": "info",
            "status": "resolved",
            "occurred_at": T0 + timedelta(minutes=5),
        }
    )
    assert (await route_alert(deps, resolved, correlation_id="c2")).groups == [gid]
    clock.advance(300)
    await flush_group(deps, gid, correlation_id="f2")
    assert [n.status for n in receiver.got] == ["firing", "resolved"]


async def test_a_group_larger_than_one_record_is_split_into_parts_each_told_and_each_resolvable(
    deps: RouterDeps, receiver: Receiver, clock: Clock, stores: StateStores
) -> None:
    placed = [
        (await route_alert(deps, alert(f"big-{n:03}", user=f"u{n}"), correlation_id=f"c{n}")).groups[0]
        for n in range(250)
    ]
    parts = sorted(set(placed))
    assert len(parts) == 3
    for part in parts:
        record = stores.kv.get(GROUPS_NAMESPACE, part)
        assert record is not None
        assert len(record.value["alerts"]) <= 100
        assert len(json.dumps(record.value)) < 30_000
    clock.advance(30)
    for part in parts:
        assert await flush_group(deps, part, correlation_id=f"f-{part}") == "notified"
    told = {a["key"] for n in receiver.got for a in n.alerts}
    assert len(told) == 250
    assert receiver.got[0].alerts[0]["summary"].endswith("happened")  # described from its own record
    # a resolution finds the part its alert is in
    resolved = Alert(
        **{
            **_fields(alert("big-249", user="u249")),
            "status": "resolved",
            "occurred_at": T0 + timedelta(minutes=1),
        }
    )
    assert (await route_alert(deps, resolved, correlation_id="r")).groups == [placed[249]]


async def test_an_alert_that_fires_again_after_its_group_was_resolved_and_forgotten_is_told_again(
    deps: RouterDeps, receiver: Receiver, clock: Clock, stores: StateStores
) -> None:
    fired = alert("again")
    [gid] = (await route_alert(deps, fired, correlation_id="c1")).groups
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f1")
    clock.advance(400)
    resolved = Alert(**{**_fields(fired), "status": "resolved", "occurred_at": clock.now})
    await route_alert(deps, resolved, correlation_id="c2")  # told at once: the group is forgotten
    assert stores.kv.get(GROUPS_NAMESPACE, gid) is None
    clock.advance(3600)
    again = Alert(**{**_fields(fired), "occurred_at": clock.now})
    assert (await route_alert(deps, again, correlation_id="c3")).groups == [gid]  # the same group id
    clock.advance(30)
    await flush_group(deps, gid, correlation_id="f3")
    assert [n.status for n in receiver.got] == ["firing", "resolved", "firing"]
