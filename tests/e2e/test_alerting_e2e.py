"""Alerting end to end: Azure Monitor's common alert schema posted to the real app on the mini-host,
routed by the plan's tree, delivered to a PagerDuty endpoint and a Teams webhook this test runs
(the local receiver sink): one incident per alert group with one dedup_key, resolve closes it, a
receiver outage loses nothing, and bad bodies never get a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.ports import free_port
from local.receiver_sink import SinkHandle, start_sink
from shared.names import ALERTS
from tests.app_host import app_host
from tests.queue_helpers import fresh_queue
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

KEY = "alerting-e2e-key"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"


@pytest.fixture
def sink() -> Iterator[SinkHandle]:
    handle = start_sink(port=0)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def app_url(app_environ: dict[str, str], storage_connection_string: str, sink: SinkHandle) -> Iterator[str]:
    fresh_queue(storage_connection_string, ALERTS)
    port = free_port()
    environ = {
        **app_environ,
        "PAGERDUTY_URL": sink.pagerduty_url,
        "TEAMS_WEBHOOK_URL": sink.teams_url,
        "WAVEGUARD_ALERT_GROUP_WAIT_SECONDS": "1",
        "WAVEGUARD_ALERT_GROUP_INTERVAL_SECONDS": "2",
    }
    with app_host(environ, storage_connection_string, http_port=port, function_keys={"default": KEY}):
        yield f"http://127.0.0.1:{port}/api/alerts/azure-monitor"


def common_alert(rule: str, condition: str, severity: str = "Sev1", alert_id: str = "a1") -> dict[str, Any]:
    """Azure Monitor's documented common alert schema (a log search alert from a Sentinel workspace)."""
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/{alert_id}",
                "alertRule": rule,
                "severity": severity,
                "signalType": "Log",
                "monitorCondition": condition,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [f"{SUBSCRIPTION}/resourcegroups/sec"],
                "configurationItems": ["sentinel"],
                "originAlertId": "1",
                "firedDateTime": "2026-12-05T10:00:00.000Z",
                **({"resolvedDateTime": "2026-12-05T10:20:00.000Z"} if condition == "Resolved" else {}),
                "description": f"{rule} ({condition})",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {"conditionType": "LogQueryCriteria", "condition": {"allOf": []}},
            "customProperties": None,
        },
    }


def post(url: str, body: object, *, key: str | None = KEY, **kwargs: Any) -> httpx.Response:
    params = {"code": key} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = kwargs.pop("headers", {"content-type": "application/json"})
    return httpx.post(url, params=params, content=content, headers=headers, timeout=10)


def incidents(sink: SinkHandle, rule: str) -> list[dict[str, Any]]:
    return [i for i in sink.incidents() if rule in str(i.get("summary"))]


def test_fired_pages_once_resolved_closes_the_same_incident(app_url: str, sink: SinkHandle) -> None:
    rule = "Sentinel - Impossible travel"
    assert post(app_url, common_alert(rule, "Fired")).status_code == 202
    wait_for("the PagerDuty incident", lambda: len(incidents(sink, rule)) == 1, timeout=30)
    # Azure Monitor retries a webhook it thinks failed: still one incident, one trigger
    assert post(app_url, common_alert(rule, "Fired")).status_code == 202
    assert post(app_url, common_alert(rule, "Resolved")).status_code == 202
    wait_for("the incident resolved", lambda: incidents(sink, rule)[0]["status"] == "resolved", timeout=30)
    [incident] = incidents(sink, rule)
    assert incident["eventCounts"]["trigger"] == 1
    assert incident["eventCounts"]["resolve"] == 1
    events = [e for e in sink.events("pagerduty") if e["body"].get("dedup_key") == incident["dedupKey"]]
    assert [e["body"]["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["body"]["payload"]["severity"] == "error"  # Sev1 → high → PagerDuty "error"
    assert sink.stats()["violationCount"] == 0


def test_a_pagerduty_outage_loses_nothing(app_url: str, sink: SinkHandle) -> None:
    rule = "Defender - Token theft"
    sink.fail(503, 6, kind="pagerduty")
    assert post(app_url, common_alert(rule, "Fired", "Sev0", alert_id="a2")).status_code == 202
    wait_for(
        "a refused delivery", lambda: any(e["status"] == 503 for e in sink.events("pagerduty")), timeout=30
    )
    wait_for("the incident after the outage", lambda: len(incidents(sink, rule)) == 1, timeout=60)
    [incident] = incidents(sink, rule)
    assert incident["status"] == "triggered"
    assert incident["severity"] == "critical"


def test_bad_requests_get_4xx_problem_json_never_5xx(app_url: str) -> None:
    assert post(app_url, common_alert("x", "Fired"), key=None).status_code == 401
    assert post(app_url, common_alert("x", "Fired"), key="wrong").status_code == 401
    cases: list[tuple[bytes, int]] = [
        (b"not json", 400),
        (b"[]", 400),
        (json.dumps({"schemaId": "Microsoft.Insights/activityLogs"}).encode(), 400),
        (
            json.dumps({**common_alert("x", "Fired"), "data": {"essentials": {"severity": "Sev9"}}}).encode(),
            400,
        ),
        (b"x" * (1024 * 1024 + 1), 413),
    ]
    for body, status in cases:
        response = post(app_url, body)
        assert response.status_code == status, body[:80]
        assert response.headers["content-type"].startswith("application/problem+json")
    assert post(app_url, b"{}", headers={"content-type": "text/plain"}).status_code == 415
