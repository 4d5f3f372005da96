"""The risk poll over an in-memory Graph and stores: what each signal raises, triage, dedupe across
polls and overlaps, responses (dry-run, on, never on break-glass), legacy counts, a poll that dies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.alerting.model import Alert
from shared.alerting.router import ACTIVE_NAMESPACE, alert_id
from shared.config.loader import load_plan
from shared.config.plan import RolloutPlan
from shared.config.risk import Risk
from shared.errors import RetryableError
from shared.names import ALERTS
from shared.offload import direct
from shared.queues import MemoryQueues
from shared.risk.poll import LEGACY_NAMESPACE, RiskDeps, run_risk_poll
from shared.risk.signals import user_key
from shared.risk.triage import clear_cache
from shared.state import StateStores, build_memory_state
from shared.state.memory import MemoryAuditLog, MemoryIdempotencyStore, MemoryKeyValueStore
from tests.conftest import PLAN_SECRETS
from tests.unit.risk.fake_graph import ADA, BG1, BOB, FakeGraph, detection, sign_in

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # a Saturday


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def _plan(**risk: Any) -> RolloutPlan:
    plan = load_plan(ROOT / "config" / "waveguard.yaml", PLAN_SECRETS)
    if not risk:
        return plan
    merged = {**plan.risk.model_dump(by_alias=True), **risk}
    return plan.model_copy(update={"risk": Risk.model_validate(merged)})


@dataclass
class World:
    graph: FakeGraph
    stores: StateStores
    queues: MemoryQueues
    clock: Clock
    plan: RolloutPlan

    def deps(self) -> RiskDeps:
        return RiskDeps(self.plan, self.graph, self.stores.aio, self.queues, self.clock)

    async def poll(self, *, force: bool = True) -> Any:
        return await run_risk_poll(self.deps(), correlation_id="test", force=force)

    def alerts(self) -> list[Alert]:
        return [Alert.from_dict(e.payload) for e in self.queues.on(ALERTS)]

    def names(self) -> list[str]:
        return [a.labels["alertname"] for a in self.alerts()]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


@pytest.fixture
def world() -> World:
    clock = Clock()
    return World(FakeGraph.tenant(), build_memory_state(clock=clock), MemoryQueues(), clock, _plan())


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_high_detection_pages_one_triaged_critical_alert_and_only_dry_runs_the_response(
    world: World,
) -> None:
    world.graph.detections = [
        detection(1, ADA, "high", at(-5)),
        detection(2, ADA, "medium", at(-4), "anonymizedIPAddress"),
    ]
    report = await world.poll()
    [alert] = world.alerts()
    assert report.detections == 2
    assert alert.key == user_key(ADA)
    assert alert.severity == "critical"
    assert alert.labels["alertname"] == "UserAtRisk"
    assert alert.labels["user"] == "ada@contoso.com"
    assert alert.labels["wave"] == "finance-hr"
    assert alert.labels["waveState"] == "planned"
    assert alert.labels["department"] == "Finance"
    assert alert.labels["mfaRegistered"] == "true"
    assert alert.labels["admin"] == "false"
    assert alert.labels["breakGlass"] == "false"
    assert "Ada Lovelace" in alert.summary
    assert "anonymizedIPAddress" in alert.summary
    assert alert.details["detectionCount"] == 2
    [response] = alert.details["responses"]
    assert response == {
        "action": "revokeSessions",
        "mode": "dryRun",
        "result": "dryRun",
        "detail": "would revoke every sign-in session and refresh token (risk.responses is dryRun)",
    }
    assert world.graph.posts == []
    [audit] = [e for e in world.stores.audit.list() if e.action == "risk.response.revokeSessions"]
    assert audit.target == ADA


@pytest.mark.parametrize(("level", "severity"), [("high", "critical"), ("medium", "medium"), ("low", None)])
async def test_risk_levels_map_to_severities_as_the_plan_says(
    world: World, level: str, severity: str | None
) -> None:
    world.graph.detections = [detection(1, BOB, level, at(-1))]
    await world.poll()
    assert [a.severity for a in world.alerts()] == ([severity] if severity else [])


async def test_the_plan_can_page_on_low_risk_too(world: World) -> None:
    world.plan = _plan(levels={"high": "critical", "medium": "high", "low": "info"})
    world.graph.detections = [detection(1, BOB, "low", at(-1)), detection(2, ADA, "medium", at(-1))]
    await world.poll()
    assert sorted(a.severity for a in world.alerts()) == ["high", "info"]


async def test_a_second_poll_raises_nothing_already_seen_but_a_late_record_inside_the_overlap_is_raised(
    world: World,
) -> None:
    world.graph.detections = [detection(1, ADA, "high", at(-3))]
    await world.poll()
    world.clock.now += timedelta(minutes=5)
    await world.poll()
    assert len(world.alerts()) == 1
    # a detection Graph lists late, stamped before the watermark but inside the 5-minute overlap
    world.graph.detections.append(detection(2, BOB, "high", at(-4)))
    world.clock.now += timedelta(minutes=5)
    await world.poll()
    assert [a.labels["user"] for a in world.alerts()] == ["ada@contoso.com", "bob@contoso.com"]


async def test_paging_is_followed_and_the_watermark_reads_only_the_recent_window(world: World) -> None:
    world.graph.detections = [detection(n, ADA if n % 2 else BOB, "high", at(-10 + n)) for n in range(7)]
    report = await world.poll()
    assert report.detections == 7
    assert len(world.alerts()) == 2  # folded per user
    world.clock.now += timedelta(hours=2)
    await world.poll()
    last = [c for c in world.graph.calls if c.startswith("/identityProtection/riskDetections")][-1]
    assert at(-4 - 5) in last  # the newest detection (at -4) minus the 5-minute overlap


async def test_a_poll_that_is_not_due_does_nothing_and_does_not_call_graph(world: World) -> None:
    world.graph.detections = [detection(1, ADA, "high", at(-3))]
    assert (await world.poll(force=False)).ran
    world.clock.now += timedelta(seconds=60)
    calls = len(world.graph.calls)
    report = await world.poll(force=False)
    assert not report.ran
    assert len(world.graph.calls) == calls
    world.clock.now += timedelta(seconds=300)
    assert (await world.poll(force=False)).ran


async def test_confirmed_compromised_pages_critical_and_resolves_the_open_risk_alert(world: World) -> None:
    world.graph.detections = [detection(1, ADA, "high", at(-3))]
    await world.poll()
    await world.stores.aio.kv.put(
        ACTIVE_NAMESPACE, alert_id(user_key(ADA)), {"key": user_key(ADA), "status": "firing"}
    )
    world.graph.risky_users = [
        {
            "id": ADA,
            "riskLevel": "high",
            "riskState": "confirmedCompromised",
            "riskDetail": "adminConfirmedUserCompromised",
            "riskLastUpdatedDateTime": at(1),
        }
    ]
    world.clock.now += timedelta(minutes=5)
    await world.poll()
    names = [(a.labels["alertname"], a.status) for a in world.alerts()]
    assert names == [("UserAtRisk", "firing"), ("UserCompromised", "firing"), ("UserAtRisk", "resolved")]
    compromised = world.alerts()[1]
    assert compromised.severity == "critical"
    assert compromised.labels["user"] == "ada@contoso.com"


async def test_a_dismissed_user_resolves_only_what_is_open(world: World) -> None:
    world.graph.risky_users = [
        {"id": BOB, "riskLevel": "none", "riskState": "dismissed", "riskLastUpdatedDateTime": at(-1)}
    ]
    await world.poll()
    assert world.alerts() == []  # nothing was open: nothing to resolve
    # Bob's risk had been raised (by an earlier poll) and is dismissed afterwards
    world.graph.detections = [detection(9, BOB, "high", at(0))]
    world.clock.now += timedelta(minutes=1)
    await world.poll()
    world.graph.risky_users[0]["riskLastUpdatedDateTime"] = at(1.5)
    world.clock.now += timedelta(minutes=5)
    await world.poll()
    assert [(a.key, a.status) for a in world.alerts()] == [
        (user_key(BOB), "firing"),
        (user_key(BOB), "resolved"),
    ]
    resolution = world.alerts()[-1]
    assert resolution.occurred_at > world.alerts()[0].occurred_at
    assert resolution.severity == "info"  # the router was never told (no record): the default


async def test_any_break_glass_sign_in_pages_critical_even_a_failed_one(world: World) -> None:
    world.graph.sign_ins = [sign_in(1, BG1, at(-2)), sign_in(2, BG1, at(-1), error=50126)]
    await world.poll()
    alerts = world.alerts()
    assert [a.labels["alertname"] for a in alerts] == ["BreakGlassSignIn", "BreakGlassSignIn"]
    assert all(a.severity == "critical" and a.labels["breakGlass"] == "true" for a in alerts)
    assert [a.labels["signInResult"] for a in alerts] == ["success", "failure"]
    assert "failed to sign in" in alerts[1].summary


async def test_responses_are_never_automatic_on_a_break_glass_account(world: World) -> None:
    world.plan = _plan(
        responses={
            "revokeSessions": {"mode": "on", "matchers": ["alertname=BreakGlassSignIn"]},
            "confirmCompromised": {"mode": "on", "matchers": ["alertname=BreakGlassSignIn"]},
        }
    )
    world.graph.sign_ins = [sign_in(1, BG1, at(-2))]
    await world.poll()
    [alert] = world.alerts()
    assert [r["result"] for r in alert.details["responses"]] == ["refused", "refused"]
    assert world.graph.posts == []


async def test_responses_turned_on_revoke_and_confirm_once_even_when_the_alert_comes_twice(
    world: World,
) -> None:
    world.plan = _plan(responses={"revokeSessions": "on", "confirmCompromised": "on"})
    world.graph.detections = [detection(1, ADA, "high", at(-3))]
    await world.poll()
    # the poll dies before its watermark is written, and reads the same detection again
    await world.stores.aio.kv.delete("risk-poll", "riskDetections")
    await world.poll()
    assert world.graph.posts == [
        (f"/users/{ADA}/revokeSignInSessions", {}),
        ("/identityProtection/riskyUsers/confirmCompromised", {"userIds": [ADA]}),
    ]
    second = world.alerts()[-1]
    assert [r["result"] for r in second.details["responses"]] == ["done", "done"]
    assert world.alerts()[0].key == second.key  # the same alert: the router treats it as one


async def test_legacy_sign_ins_are_alerted_and_counted_per_wave_for_planning(world: World) -> None:
    world.graph.sign_ins = [
        sign_in(1, ADA, at(-3), app="IMAP4"),
        sign_in(2, ADA, at(-2), app="IMAP4"),
        sign_in(3, BOB, at(-2), app="Exchange ActiveSync", error=50126),  # failed: counted, not alerted
        sign_in(4, BOB, at(-1)),
    ]
    await world.poll()
    legacy = [a for a in world.alerts() if a.labels["alertname"] == "LegacyAuthSignIn"]
    assert {a.key for a in legacy} == {f"signin:legacy:{ADA}:imap4"}
    assert legacy[0].severity == "medium"
    assert legacy[0].labels["clientApp"] == "IMAP4"
    finance = (await world.stores.aio.kv.get(LEGACY_NAMESPACE, "finance-hr")).value
    pilot = (await world.stores.aio.kv.get(LEGACY_NAMESPACE, "pilot")).value
    assert finance["days"]["2026-12-05"] == {"IMAP4": 2}
    assert pilot["days"]["2026-12-05"] == {"Exchange ActiveSync": 1}
    await world.poll()  # the same window again: not counted twice
    finance = (await world.stores.aio.kv.get(LEGACY_NAMESPACE, "finance-hr")).value
    assert finance["days"]["2026-12-05"] == {"IMAP4": 2}


class DiesOnce(MemoryKeyValueStore):
    """A store whose first write matching ``where`` fails, as if the poll died there."""

    def __init__(self, where: Callable[[str, str, str], bool]) -> None:
        super().__init__()
        self.where = where
        self.died = False

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        if not self.died and self.where(namespace, key, text):
            self.died = True
            raise RetryableError("the process died here")
        return super()._write(namespace, key, text, if_match=if_match, if_absent=if_absent)


def _counts_written(namespace: str, key: str, text: str) -> bool:
    return namespace == LEGACY_NAMESPACE


def _pending_cleared(namespace: str, key: str, text: str) -> bool:
    return (namespace, key) == ("risk-poll", "signIns") and "pending" not in text


@pytest.mark.parametrize("dies", [_counts_written, _pending_cleared], ids=["before-counts", "after-counts"])
async def test_legacy_counts_of_a_poll_that_died_after_its_watermark_are_added_exactly_once(
    world: World, dies: Callable[[str, str, str], bool]
) -> None:
    world.stores = StateStores(
        idempotency=MemoryIdempotencyStore(clock=world.clock),
        kv=DiesOnce(dies),
        audit=MemoryAuditLog(clock=world.clock),
        offload=direct,
    )
    world.graph.sign_ins = [sign_in(1, ADA, at(-3), app="IMAP4"), sign_in(2, ADA, at(-2), app="POP3")]
    with pytest.raises(RetryableError):
        await world.poll()  # the watermark is written with the counts pending; then it dies
    world.graph.sign_ins.append(sign_in(3, ADA, at(-1), app="IMAP4"))
    await world.poll()  # what is pending first (once), then its own: the first two are not read again
    await world.poll()
    finance = (await world.stores.aio.kv.get(LEGACY_NAMESPACE, "finance-hr")).value
    assert finance["days"]["2026-12-05"] == {"IMAP4": 2, "POP3": 1}
    mark = (await world.stores.aio.kv.get("risk-poll", "signIns")).value
    assert "pending" not in mark


async def test_an_unusual_sign_in_needs_all_three_unmanaged_new_country_and_off_hours(world: World) -> None:
    saturday_night = "2026-12-05T02:30:00Z"
    world.clock.now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    world.graph.sign_ins = [
        sign_in(1, ADA, saturday_night, country="KP", managed=False),  # all three: high
        sign_in(2, ADA, saturday_night, country="GB", managed=False),  # her usage location
        sign_in(3, BOB, saturday_night, country="KP", managed=True),  # managed device
    ]
    await world.poll()
    [alert] = world.alerts()
    assert alert.labels["alertname"] == "UnusualSignIn"
    assert alert.severity == "high"
    assert alert.labels["country"] == "KP"
    assert "GB" in alert.details["knownCountries"]


async def test_a_country_seen_once_is_known_afterwards(world: World) -> None:
    world.graph.sign_ins = [sign_in(1, BOB, at(-10), country="FR")]  # a working-hours sign-in from FR
    await world.poll()
    world.clock.now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    world.graph.sign_ins = [sign_in(2, BOB, "2026-12-06T02:50:00Z", country="FR", managed=False)]
    await world.poll()
    assert world.alerts() == []


async def test_beyond_the_triage_budget_alerts_still_carry_the_wave_and_break_glass_facts(
    world: World,
) -> None:
    world.plan = _plan(triageUsersPerPoll=0)
    world.graph.detections = [detection(1, ADA, "high", at(-1))]
    await world.poll()
    [alert] = world.alerts()
    assert alert.labels["wave"] == "finance-hr"
    assert alert.labels["breakGlass"] == "false"
    assert "mfaRegistered" not in alert.labels
    assert alert.details["triaged"] is False
    assert not any(c.startswith(f"/users/{ADA}") for c in world.graph.calls)


async def test_a_poll_that_fails_midway_keeps_what_it_finished_and_raises_nothing_twice(world: World) -> None:
    world.graph.detections = [detection(1, ADA, "high", at(-3))]
    world.graph.sign_ins = [sign_in(1, BG1, at(-2))]
    world.graph.fail_on = "/auditLogs/signIns"
    with pytest.raises(RetryableError):
        await world.poll()
    assert world.names() == ["UserAtRisk"]
    world.graph.fail_on = None
    await world.poll()
    assert world.names() == ["UserAtRisk", "BreakGlassSignIn"]


async def test_after_an_outage_the_backlog_is_read_in_one_hour_slices_and_none_is_skipped(
    world: World,
) -> None:
    await world.poll()  # the watermarks start here
    world.graph.detections = [detection(1, ADA, "high", at(30)), detection(2, BOB, "high", at(150))]
    world.clock.now += timedelta(hours=3)  # three hours without a poll
    await world.poll()
    last = [c for c in world.graph.calls if c.startswith("/identityProtection/riskDetections")][-1]
    assert " le " in last  # a capped slice, not the whole three hours at once
    for _ in range(4):
        await world.poll()
    assert sorted(a.labels["user"] for a in world.alerts()) == ["ada@contoso.com", "bob@contoso.com"]
    reads = [c for c in world.graph.calls if c.startswith("/identityProtection/riskDetections")]
    assert " le " not in reads[-1]  # caught up: the window reaches now again
