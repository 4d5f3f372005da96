"""The risk poll against the Graph emulator (Identity Protection's documented payloads and its
1 request/s budget, answered with 429s without Retry-After) and Azurite: detections, risky users
and sign-ins in, triaged alerts out, a response that really revokes, nothing raised twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS, infra_permissions
from shared.alerting.model import Alert
from shared.config import Settings, StorageSettings, load_plan_for, load_settings
from shared.config.risk import Risk
from shared.graph import build_graph_client
from shared.names import ALERTS
from shared.queues import MemoryQueues
from shared.risk.graph_port import client_port
from shared.risk.poll import RiskDeps, run_risk_poll
from shared.risk.triage import clear_cache
from shared.state import build_state

pytestmark = pytest.mark.functional


def _admin(emulator: EmulatorHandle, method: str, path: str, body: object = None) -> Any:
    response = httpx.request(method, f"{emulator.admin_url}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Poller:
    def __init__(self, environ: dict[str, str], storage: str, **risk: Any) -> None:
        clear_cache()
        settings = load_settings(environ)
        plan = load_plan_for(settings)
        if risk:
            plan = plan.model_copy(
                update={"risk": Risk.model_validate({**plan.risk.model_dump(by_alias=True), **risk})}
            )
        self.runner = asyncio.Runner()  # one loop for every poll: the Graph client lives on it
        self.queues = MemoryQueues()
        self.port = client_port(build_graph_client(settings))
        self.stores = build_state(Settings(storage=StorageSettings(connection_string=storage)))
        self.deps = RiskDeps(plan, self.port, self.stores.aio, self.queues)

    def poll(self) -> Any:
        return self.runner.run(run_risk_poll(self.deps, correlation_id="functional", force=True))

    def alerts(self) -> list[Alert]:
        return [Alert.from_dict(e.payload) for e in self.queues.on(ALERTS)]


def test_detections_risky_users_and_sign_ins_become_triaged_alerts_within_the_budget(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, storage_connection_string: str
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    finance_head = demo.head_ids["Finance"]
    now = datetime.now(UTC)
    # GIVEN a deployment with destructive responses allowed (the revocation needs its permission)
    emulator_server.reset(permissions=sorted(infra_permissions({"enableDestructiveResponses": True})))
    # AND a high-risk detection for the Finance head, a medium one for the CEO, a break-glass
    # sign-in and an IMAP sign-in, as Identity Protection and the sign-in log report them
    _admin(
        emulator_server,
        "POST",
        "/risk-detections",
        [
            {
                "userId": finance_head,
                "riskLevel": "high",
                "riskEventType": "anonymizedIPAddress",
                "detectedDateTime": _z(now - timedelta(minutes=3)),
            },
            {
                "userId": demo.ceo_id,
                "riskLevel": "medium",
                "riskEventType": "unfamiliarFeatures",
                "detectedDateTime": _z(now - timedelta(minutes=2)),
            },
        ],
    )
    _admin(
        emulator_server,
        "POST",
        "/signins",
        [
            {"userId": demo.break_glass_ids[0], "createdDateTime": _z(now - timedelta(minutes=1))},
            {
                "userId": finance_head,
                "clientAppUsed": "IMAP4",
                "createdDateTime": _z(now - timedelta(minutes=1)),
            },
        ],
    )
    poller = Poller(app_environ, storage_connection_string, responses={"revokeSessions": "on"})
    # WHEN the poll runs (the emulator's Identity Protection budget is on: 1 request/s)
    report = poller.poll()
    # THEN each signal became its alert, triaged from Graph
    by_name = {a.labels["alertname"]: a for a in poller.alerts()}
    assert set(by_name) >= {"UserAtRisk", "BreakGlassSignIn", "LegacyAuthSignIn"}
    at_risk = [a for a in poller.alerts() if a.labels["alertname"] == "UserAtRisk"]
    severities = {a.details["userId"]: a.severity for a in at_risk}
    assert severities == {finance_head.lower(): "critical", demo.ceo_id.lower(): "medium"}
    head = next(a for a in at_risk if a.details["userId"] == finance_head.lower())
    assert head.labels["department"] == "Finance"
    assert head.details["triaged"] is True
    assert head.details["displayName"]
    assert by_name["BreakGlassSignIn"].severity == "critical"
    assert by_name["BreakGlassSignIn"].labels["breakGlass"] == "true"
    # AND the critical one was answered: its sessions really revoked, once
    assert [r["result"] for r in head.details["responses"]] == ["done"]
    revoked = _admin(emulator_server, "GET", f"/revocations?userId={finance_head}")
    assert revoked["count"] == 1
    assert report.detections == 2
    # AND a second poll raises nothing again
    sent = len(poller.alerts())
    poller.poll()
    assert len(poller.alerts()) == sent
    assert _admin(emulator_server, "GET", f"/revocations?userId={finance_head}")["count"] == 1


def test_a_confirmed_compromise_and_a_dismissal_flow_through_on_the_next_polls(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, storage_connection_string: str
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    user = demo.head_ids["Sales"]
    _admin(
        emulator_server,
        "POST",
        "/risk-detections",
        {"userId": user, "riskLevel": "high", "riskEventType": "leakedCredentials"},
    )
    poller = Poller(app_environ, storage_connection_string)
    poller.poll()
    # WHEN an administrator confirms the user compromised through Graph
    httpx.post(
        f"{emulator_server.base_url}/identityProtection/riskyUsers/confirmCompromised",
        json={"userIds": [user]},
        timeout=10,
        headers=ADMIN_HEADERS,
    ).raise_for_status()
    poller.poll()
    names = [(a.labels["alertname"], a.status) for a in poller.alerts()]
    assert ("UserCompromised", "firing") in names
    assert ("UserAtRisk", "resolved") in names
