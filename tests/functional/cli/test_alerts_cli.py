"""`waveguard alerts list|show|ack|resolve` against Azurite, over records the real router wrote."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from cli.alerts import ACK_ATTEMPTS, ack_alert
from cli.main import main
from shared.alerting import Alert
from shared.alerting.router import (
    ACTIVE_NAMESPACE,
    GROUPS_NAMESPACE,
    Notification,
    RouterDeps,
    alert_id,
    route_alert,
)
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.names import ALERTS
from shared.queues import MemoryQueues
from shared.state import AsyncKeyValuePort, ConcurrencyError, StateStores, Versioned, build_state
from tests.queue_helpers import fresh_queue

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)
RISKY = Alert(
    key="risk:alice@contoso.com:RiskySignIn",
    severity="high",
    summary="alice@contoso.com: risky sign-in (high) from an unfamiliar location",
    source="risk-detections",
    labels={"alertname": "RiskySignIn", "user": "alice@contoso.com"},
    details={"riskLevel": "high"},
    occurred_at=NOW - timedelta(hours=2),
)
BLAST = Alert(
    key="wave-sync:pilot:blast-radius",
    severity="critical",
    summary="wave pilot: the sync would add 900 and remove 0",
    source="wave-sync",
    labels={"alertname": "WaveSyncBlastRadius", "wave": "pilot"},
    occurred_at=NOW - timedelta(hours=1),
)
LAGGING = Alert(
    key="wave:finance-hr:registration-lagging",
    severity="medium",
    summary="wave finance-hr: 40% registered after 10 days",
    source="rollout",
    labels={"alertname": "RegistrationLagging", "wave": "finance-hr"},
    occurred_at=NOW - timedelta(hours=3),
)


def _clear(stores: StateStores) -> None:
    for namespace in (ACTIVE_NAMESPACE, GROUPS_NAMESPACE):
        for value in stores.kv.values(namespace):
            if isinstance(value, dict) and value.get("id"):
                stores.kv.delete(namespace, str(value["id"]))


@pytest.fixture
def stores(app_environ: dict[str, str]) -> Iterator[StateStores]:
    """The app's tables, with the router's alerts and groups cleared before and after."""
    state = build_state(load_settings(app_environ))
    _clear(state)
    yield state
    _clear(state)


async def _no_delivery(notification: Notification) -> None:
    raise AssertionError(f"nothing is flushed in these tests: {notification.title}")


@pytest.fixture
def router(stores: StateStores, app_environ: dict[str, str]) -> RouterDeps:
    """The real router over the example plan and the test's tables (its flushes stay in memory)."""
    plan = load_plan_for(load_settings(app_environ))
    return RouterDeps(plan.alerting, stores.aio, MemoryQueues(), _no_delivery)


@pytest.fixture
def alerts_queue(storage_connection_string: str) -> QueueClient:
    """The ``alerts`` queue, empty (no router consumes it in these tests)."""
    return fresh_queue(storage_connection_string, ALERTS)


def _route(router: RouterDeps, *alerts: Alert) -> None:
    for alert in alerts:
        asyncio.run(route_alert(router, alert, correlation_id=f"test-{alert.key}"))


def _seed(router: RouterDeps) -> None:
    """Three alerts as the router records them: two firing, one firing then resolved."""
    _route(router, RISKY, BLAST, LAGGING)
    _route(router, Alert(**{**_fields(LAGGING), "status": "resolved", "occurred_at": NOW}))


def _fields(alert: Alert) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in Alert.__dataclass_fields__}


def _record(stores: StateStores, alert: Alert) -> dict[str, Any]:
    stored = stores.kv.get(ACTIVE_NAMESPACE, alert_id(alert.key))
    assert stored is not None
    return dict(stored.value)


def _run(app_environ: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), environ=app_environ)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _queued(queue: QueueClient) -> list[Envelope]:
    return [Envelope.from_json(base64.b64decode(m.content)) for m in queue.peek_messages(max_messages=32)]


def test_list_shows_the_held_alerts_newest_first_in_100_columns(
    router: RouterDeps, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(app_environ, capsys, "alerts", "list")
    assert (code, out.strip()) == (0, "no alerts")
    _seed(router)
    code, out, _ = _run(app_environ, capsys, "alerts", "list")
    assert code == 0, out
    header, *rows = out.rstrip("\n").split("\n")
    assert header.split() == [
        "ID",
        "SEVERITY",
        "ALERTNAME",
        "STATUS",
        "WAVE",
        "USER",
        "STARTED",
        "(UTC)",
        "ACK",
    ]
    assert all(len(line) <= 100 for line in (header, *rows))
    # newest first: the blast radius (1 h ago), the risky sign-in (2 h), the lagging wave (3 h, resolved)
    assert [row.split()[2] for row in rows] == ["WaveSyncBlastRadius", "RiskySignIn", "RegistrationLagging"]
    blast, risky, lagging = (row.split() for row in rows)
    assert blast[0] == alert_id(BLAST.key)[:8]
    assert blast[1:5] == ["critical", "WaveSyncBlastRadius", "firing", "pilot"]
    assert risky[1:6] == ["high", "RiskySignIn", "firing", "-", "alice@contoso.com"]
    assert lagging[1:5] == ["medium", "RegistrationLagging", "resolved", "finance-hr"]
    assert blast[-1] == risky[-1] == "-"  # nobody acked
    # filters: status, severity (repeated or comma-separated)
    _, out, _ = _run(app_environ, capsys, "alerts", "list", "--status", "firing")
    assert "RegistrationLagging" not in out
    assert "RiskySignIn" in out
    _, out, _ = _run(app_environ, capsys, "alerts", "list", "--status", "resolved")
    assert "RegistrationLagging" in out
    assert "RiskySignIn" not in out
    _, out, _ = _run(app_environ, capsys, "alerts", "list", "--severity", "critical,medium", "--json")
    assert [a["key"] for a in json.loads(out)["alerts"]] == [BLAST.key, LAGGING.key]
    _, out, _ = _run(app_environ, capsys, "alerts", "list", "--severity", "high", "--severity", "info")
    assert "RiskySignIn" in out
    assert "WaveSyncBlastRadius" not in out
    code, _, err = _run(app_environ, capsys, "alerts", "list", "--severity", "urgent")
    assert code == 2
    assert "--severity: urgent: expected one of critical" in err


def test_list_json_carries_each_whole_record_and_its_short_id(
    router: RouterDeps, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(router)
    code, out, _ = _run(app_environ, capsys, "alerts", "list", "--json", "--status", "firing")
    assert code == 0
    body = json.loads(out)
    assert list(body) == ["alerts"]
    blast, risky = body["alerts"]
    assert set(risky) == {
        "shortId",
        "id",
        "key",
        "status",
        "severity",
        "summary",
        "source",
        "labels",
        "details",
        "startsAt",
        "endsAt",
        "updatedAt",
        "occurredAt",
        "groups",
        "ack",
    }
    assert risky["id"] == alert_id(RISKY.key)
    assert risky["shortId"] == risky["id"][:8]
    assert (risky["status"], risky["severity"], risky["source"], risky["ack"]) == (
        "firing",
        "high",
        "risk-detections",
        None,
    )
    assert risky["labels"] == {"severity": "high", "alertname": "RiskySignIn", "user": "alice@contoso.com"}
    assert risky["details"] == {"riskLevel": "high"}
    assert datetime.fromisoformat(risky["startsAt"]) == RISKY.occurred_at
    assert blast["key"] == BLAST.key
    assert len(blast["groups"]) == 1


def test_show_prints_the_record_its_groups_and_the_audit_entries_about_it(
    router: RouterDeps, stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(router)
    short = alert_id(BLAST.key)[:8]
    assert _run(app_environ, capsys, "alerts", "ack", short, "--comment", "on it")[0] == 0
    code, out, _ = _run(app_environ, capsys, "alerts", "show", short, "--json")
    assert code == 0, out
    body = json.loads(out)
    assert list(body) == ["alert", "groups", "audit"]
    assert body["alert"]["key"] == BLAST.key
    assert body["alert"]["shortId"] == short
    assert body["alert"]["ack"]["comment"] == "on it"
    # a critical alert goes to PagerDuty (the example plan's first child route), not yet notified
    [group] = body["groups"]
    assert group["id"] == body["alert"]["groups"][0]
    assert (group["present"], group["receiver"], group["route"], group["alertStatus"]) == (
        True,
        "pagerduty-oncall",
        "0.0",
        "firing",
    )
    assert (group["notifications"], group["lastNotifiedAt"]) == (0, None)
    assert datetime.fromisoformat(group["nextFlushAt"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert group["groupLabels"] == {"alertname": "WaveSyncBlastRadius", "wave": "pilot"}
    audit = body["audit"]
    assert set(audit) == {"since", "scanned", "complete", "entries"}
    assert audit["complete"] is True
    [ack] = [e for e in audit["entries"] if e["action"] == "alert.ack"]
    assert (ack["target"], ack["reason"], ack["details"]["alertId"]) == (
        BLAST.key,
        "on it",
        body["alert"]["id"],
    )
    assert ack["actor"].startswith("cli:")
    # the same in text; by its key too
    code, out, _ = _run(app_environ, capsys, "alerts", "show", BLAST.key)
    assert code == 0
    assert f"alert {short}  ({alert_id(BLAST.key)})" in out
    assert "  ack        by cli:" in out
    assert ": on it" in out
    assert f"  {group['id']}  receiver pagerduty-oncall  route 0.0\n      last notified never, next" in out
    assert "alert.ack" in out


def test_unknown_too_short_and_ambiguous_ids_exit_2_naming_them(
    router: RouterDeps, stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _route(router, RISKY)
    # two records whose ids share the prefix abcd (as the router shapes them)
    for suffix, name in (("0001", "First"), ("0002", "Second")):
        record = {**_record(stores, RISKY), "id": "abcd" + suffix * 7, "key": f"test:{name}"}
        record["labels"] = {**record["labels"], "alertname": name}
        stores.kv.put(ACTIVE_NAMESPACE, record["id"], record)
    for verb in ("show", "ack", "resolve"):
        code, _, err = _run(app_environ, capsys, "alerts", verb, "ffff")
        assert code == 2, verb
        assert "error: id 'ffff': the router holds no such alert (see `waveguard alerts list`)" in err
        code, _, err = _run(app_environ, capsys, "alerts", verb, "abcd")
        assert code == 2, verb
        assert "error: id 'abcd' is ambiguous: it matches 2 alerts:" in err
        assert "abcd0001 (First)" in err
        assert "abcd0002 (Second)" in err
        code, _, err = _run(app_environ, capsys, "alerts", verb, "abc")
        assert code == 2
        assert "id 'abc': give at least 4 characters" in err
    # the list shows them with prefixes long enough to tell them apart
    _, out, _ = _run(app_environ, capsys, "alerts", "list")
    assert "abcd0001 " in out
    assert "abcd0002 " in out
    # one more character, and it is unambiguous
    code, out, _ = _run(app_environ, capsys, "alerts", "show", "abcd00010", "--json")
    assert code == 0
    assert json.loads(out)["alert"]["key"] == "test:First"


def test_ack_records_who_and_why_once_and_the_router_keeps_it(
    router: RouterDeps, stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(router)
    short = alert_id(RISKY.key)[:8]
    before = datetime.now(UTC)
    code, out, _ = _run(
        app_environ, capsys, "alerts", "ack", short, "--by", "jane", "--comment", "calling alice", "--json"
    )
    assert code == 0, out
    body = json.loads(out)
    assert list(body) == ["changed", "alert"]
    assert body["changed"] is True
    ack = body["alert"]["ack"]
    assert (ack["by"], ack["comment"]) == ("jane", "calling alice")
    assert datetime.fromisoformat(ack["at"]) >= before - timedelta(seconds=1)
    assert _record(stores, RISKY)["ack"] == ack
    # acking it again changes nothing and says so
    code, out, _ = _run(app_environ, capsys, "alerts", "ack", short, "--by", "joe")
    assert code == 0
    assert f"{short} (RiskySignIn) is already acknowledged by jane" in out
    assert "nothing to do" in out
    assert _record(stores, RISKY)["ack"] == ack
    entries = [e for e in stores.audit.list(limit=200) if e.action == "alert.ack" and e.target == RISKY.key]
    assert len(entries) == 1
    assert (entries[0].reason, entries[0].details) == (
        "calling alice",
        {"alertId": alert_id(RISKY.key), "by": "jane"},
    )
    # the list shows it acked; the router rewriting the record (the alert comes again) keeps the ack
    _, out, _ = _run(app_environ, capsys, "alerts", "list")
    assert [line.split()[-1] for line in out.splitlines() if "RiskySignIn" in line] == ["yes"]
    _route(router, Alert(**{**_fields(RISKY), "occurred_at": datetime.now(UTC)}))
    again = _record(stores, RISKY)
    assert again["ack"] == ack
    assert again["updatedAt"] > body["alert"]["updatedAt"]
    # without --by, the operator acks
    code, out, _ = _run(app_environ, capsys, "alerts", "ack", alert_id(BLAST.key)[:8])
    assert code == 0
    assert "acknowledged" in out
    assert "as cli:" in out
    assert _record(stores, BLAST)["ack"]["by"].startswith("cli:")


@dataclass
class RouterBetweenReadAndWrite:
    """The real store, except that the router rewrites the record right after the first ``times`` reads."""

    inner: AsyncKeyValuePort
    router: RouterDeps
    alert: Alert
    times: int = 1
    puts: list[str] = field(default_factory=list)

    async def get(self, namespace: str, key: str) -> Versioned | None:
        stored = await self.inner.get(namespace, key)
        if self.times > 0:
            self.times -= 1
            again = Alert(**{**_fields(self.alert), "summary": f"{self.alert.summary} (again {self.times})"})
            await route_alert(self.router, again, correlation_id="test-race")
        return stored

    async def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        try:
            etag = await self.inner.put(namespace, key, value, if_match=if_match, if_absent=if_absent)
        except ConcurrencyError:
            self.puts.append("conflict")
            raise
        self.puts.append("written")
        return etag

    async def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        await self.inner.delete(namespace, key, if_match=if_match)

    async def values(self, namespace: str, *, limit: int = 1000) -> list[Any]:
        return await self.inner.values(namespace, limit=limit)


def test_ack_retries_when_the_router_rewrites_the_record_between_read_and_write(
    router: RouterDeps, stores: StateStores
) -> None:
    _route(router, RISKY)
    racing = RouterBetweenReadAndWrite(stores.aio.kv, router, RISKY)
    record, changed = asyncio.run(
        ack_alert(racing, alert_id(RISKY.key), by="jane", comment="", now=datetime.now(UTC))
    )
    # the first conditional write lost to the router; the second, over the router's record, won
    assert changed is True
    assert racing.puts == ["conflict", "written"]
    stored = _record(stores, RISKY)
    assert stored == record
    assert stored["summary"] == f"{RISKY.summary} (again 0)"  # the router's write is kept
    assert stored["ack"]["by"] == "jane"


def test_ack_gives_up_when_the_record_never_stops_changing(router: RouterDeps, stores: StateStores) -> None:
    _route(router, RISKY)
    racing = RouterBetweenReadAndWrite(stores.aio.kv, router, RISKY, times=ACK_ATTEMPTS)
    with pytest.raises(ConcurrencyError, match="kept changing"):
        asyncio.run(ack_alert(racing, alert_id(RISKY.key), by="jane", comment="", now=datetime.now(UTC)))
    assert racing.puts == ["conflict"] * ACK_ATTEMPTS
    assert _record(stores, RISKY)["ack"] is None


def test_resolve_puts_exactly_one_resolved_alert_on_the_alerts_queue_and_is_audited(
    router: RouterDeps,
    stores: StateStores,
    alerts_queue: QueueClient,
    app_environ: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(router)
    short = alert_id(RISKY.key)[:8]
    before = datetime.now(UTC)
    code, out, _ = _run(
        app_environ, capsys, "alerts", "resolve", short, "--comment", "alice confirmed", "--json"
    )
    assert code == 0, out
    body = json.loads(out)
    assert list(body) == ["changed", "alert", "envelope"]
    assert body["changed"] is True
    assert body["alert"]["key"] == RISKY.key
    # exactly one message: an alert envelope resolving the same alert
    [envelope] = _queued(alerts_queue)
    assert envelope.type == "alert"
    assert envelope.id == body["envelope"]["id"]
    assert body["envelope"]["queue"] == "alerts"
    resolution = Alert.from_dict(envelope.payload)
    assert (
        resolution.status,
        resolution.key,
        resolution.severity,
        resolution.summary,
        resolution.source,
    ) == (
        "resolved",
        RISKY.key,
        RISKY.severity,
        RISKY.summary,
        RISKY.source,
    )
    assert resolution.routing_labels() == RISKY.routing_labels()
    assert resolution.occurred_at >= before.replace(microsecond=0)
    assert resolution.details["resolveComment"] == "alice confirmed"
    assert str(resolution.details["resolvedBy"]).startswith("cli:")
    # the record is untouched: the router resolves it when it takes the message
    assert _record(stores, RISKY)["status"] == "firing"
    [entry] = [
        e for e in stores.audit.list(limit=200) if e.action == "alert.resolve" and e.target == RISKY.key
    ]
    assert entry.reason == "alice confirmed"
    assert entry.actor.startswith("cli:")
    assert entry.details == {"alertId": alert_id(RISKY.key), "envelopeId": envelope.id, "queue": "alerts"}
    # the router takes it through its normal path: the record turns resolved
    _route(router, resolution)
    assert _record(stores, RISKY)["status"] == "resolved"
    # resolving it again changes nothing, puts nothing on the queue and says so
    code, out, _ = _run(app_environ, capsys, "alerts", "resolve", short)
    assert code == 0
    assert f"{short} (RiskySignIn) is already resolved" in out
    assert "nothing to do" in out
    code, out, _ = _run(app_environ, capsys, "alerts", "resolve", short, "--json")
    assert json.loads(out)["changed"] is False
    assert json.loads(out)["envelope"] is None
    assert len(_queued(alerts_queue)) == 1
    assert (
        len(
            [e for e in stores.audit.list(limit=200) if e.action == "alert.resolve" and e.target == RISKY.key]
        )
        == 1
    )


def test_resolve_in_text_names_the_envelope(
    router: RouterDeps,
    alerts_queue: QueueClient,
    app_environ: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _route(router, BLAST)
    code, out, _ = _run(app_environ, capsys, "alerts", "resolve", BLAST.key)
    assert code == 0
    [envelope] = _queued(alerts_queue)
    assert out.startswith(f"resolution of {alert_id(BLAST.key)[:8]} (WaveSyncBlastRadius) queued on alerts")
    assert f"(envelope {envelope.id})" in out
