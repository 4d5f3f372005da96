"""Azure Monitor's common alert schema at the ingress: the documented payloads, and worse."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.alerting.azure_monitor import MAX_BODY_BYTES, AzureMonitorDeps, accept_azure_monitor_alert
from shared.alerting.model import Alert
from shared.envelope import Envelope
from shared.http_ingress import IncomingRequest
from shared.names import ALERTS
from shared.queues import MemoryQueues

JSON = {"content-type": "application/json"}
SUBSCRIPTION = "/subscriptions/11111111-2222-3333-4444-555555555555"
ALERT_ID = f"{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"


def common_alert(condition: str = "Fired", severity: str = "Sev1", **essentials: Any) -> dict[str, Any]:
    """A log search alert in the common alert schema, as Azure Monitor's samples show it."""
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": ALERT_ID,
                "alertRule": "Sentinel - Impossible travel for a break-glass account",
                "severity": severity,
                "signalType": "Log",
                "monitorCondition": condition,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [
                    f"{SUBSCRIPTION}/resourcegroups/sec/providers/microsoft.operationalinsights/workspaces/sentinel"
                ],
                "configurationItems": ["sentinel"],
                "originAlertId": "12345678-1234-1234-1234-1234567890ab",
                "firedDateTime": "2026-12-05T10:00:00.0000000Z",
                **({"resolvedDateTime": "2026-12-05T10:30:00.0000000Z"} if condition == "Resolved" else {}),
                "description": "Two sign-ins 8,000 km apart within an hour",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
                **essentials,
            },
            "alertContext": {
                "properties": None,
                "conditionType": "LogQueryCriteria",
                "condition": {
                    "windowSize": "PT1H",
                    "allOf": [
                        {
                            "searchQuery": "SigninLogs | where ...",
                            "metricMeasureColumn": None,
                            "targetResourceTypes": "['Microsoft.OperationalInsights/workspaces']",
                            "operator": "GreaterThan",
                            "threshold": "0",
                            "timeAggregation": "Count",
                            "dimensions": [{"name": "UserPrincipalName", "value": "Bg-Admin1@Contoso.com"}],
                            "metricValue": 2.0,
                            "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
                        }
                    ],
                },
            },
            "customProperties": {"team": "identity", "alertname": "cannot-override"},
        },
    }


async def post(
    body: object, *, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], MemoryQueues]:
    queues = MemoryQueues()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = await accept_azure_monitor_alert(
        IncomingRequest("POST", headers if headers is not None else JSON, raw), deps=AzureMonitorDeps(queues)
    )
    return result.status, result.body, queues


def only_alert(queues: MemoryQueues) -> tuple[Envelope, Alert]:
    [envelope] = queues.on(ALERTS)
    return envelope, Alert.from_dict(envelope.payload)


async def test_a_fired_log_search_alert_becomes_one_routable_alert_with_its_user_and_properties() -> None:
    status, body, queues = await post(common_alert())
    assert status == 202
    assert body["accepted"] == 1
    envelope, alert = only_alert(queues)
    assert body["id"] == envelope.id
    assert alert.status == "firing"
    assert alert.severity == "high"
    assert alert.source == "azure-monitor"
    assert alert.summary == "Two sign-ins 8,000 km apart within an hour"
    assert alert.labels["alertname"] == "Sentinel - Impossible travel for a break-glass account"
    assert alert.labels["user"] == "bg-admin1@contoso.com"
    assert alert.labels["team"] == "identity"
    assert alert.labels["azureSeverity"] == "Sev1"
    assert alert.labels["signalType"] == "Log"
    assert alert.details["alertId"] == ALERT_ID
    assert alert.occurred_at.isoformat().startswith("2026-12-05T10:00:00")


@pytest.mark.parametrize(
    ("sev", "expected"),
    [("Sev0", "critical"), ("Sev1", "high"), ("Sev2", "medium"), ("Sev3", "info"), ("Sev4", "info")],
)
async def test_azure_severities_map_to_waveguard_severities(sev: str, expected: str) -> None:
    status, _, queues = await post(common_alert(severity=sev))
    assert status == 202
    assert only_alert(queues)[1].severity == expected


async def test_resolved_resolves_the_same_alert_as_a_message_of_its_own() -> None:
    _, _, fired = await post(common_alert("Fired"))
    status, body, resolved = await post(common_alert("Resolved"))
    assert status == 202
    assert body["status"] == "resolved"
    fired_envelope, fired_alert = only_alert(fired)
    resolved_envelope, resolved_alert = only_alert(resolved)
    assert resolved_alert.key == fired_alert.key
    assert resolved_alert.status == "resolved"
    assert resolved_envelope.id != fired_envelope.id


async def test_a_webhook_azure_monitor_retries_enqueues_the_same_message_id() -> None:
    _, _, first = await post(common_alert())
    _, _, again = await post(common_alert())
    assert only_alert(first)[0].id == only_alert(again)[0].id


def _without(path: list[str]) -> dict[str, Any]:
    body = common_alert()
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


def _with(path: list[str], value: object) -> dict[str, Any]:
    body = copy.deepcopy(common_alert())
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


E = ["data", "essentials"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"NaN", "body"),
        (b"[]", "body"),
        (b"\xff\xfe", "body"),
        (_with(["schemaId"], "Microsoft.Insights/activityLogs"), "schemaId"),
        (_without(["schemaId"]), "schemaId"),
        (_with(["data"], None), "data.essentials"),
        (_with(["data"], []), "data.essentials"),
        (_with([*E], "x"), "data.essentials"),
        (_without([*E, "alertId"]), "data.essentials.alertId"),
        (_with([*E, "alertId"], 7), "data.essentials.alertId"),
        (_with([*E, "alertId"], "x" * 2000), "data.essentials.alertId"),
        (_without([*E, "alertRule"]), "data.essentials.alertRule"),
        (_with([*E, "severity"], "Sev9"), "data.essentials.severity"),
        (_with([*E, "severity"], 1), "data.essentials.severity"),
        (_with([*E, "severity"], ["Sev0"]), "data.essentials.severity"),
        (_with([*E, "severity"], {"a": 1}), "data.essentials.severity"),
        (_with([*E, "monitorCondition"], ["Fired"]), "data.essentials.monitorCondition"),
        (_with([*E, "monitorCondition"], "Acknowledged"), "data.essentials.monitorCondition"),
        (_with([*E, "firedDateTime"], "yesterday"), "data.essentials.firedDateTime"),
        (_with([*E, "description"], {"a": 1}), "data.essentials.description"),
        (_with([*E, "alertTargetIDs"], "one"), "data.essentials.alertTargetIDs"),
        (_with(["data", "customProperties"], ["x"]), "data.customProperties"),
    ],
)
async def test_bad_bodies_get_400_problem_json_naming_the_field_and_nothing_is_queued(
    body: object, field: str
) -> None:
    status, problem, queues = await post(body)
    assert status == 400
    assert field in [e["field"] for e in problem["errors"]]
    assert queues.sent == []


async def test_every_bad_field_is_named_at_once() -> None:
    body = _with([*E, "severity"], "Sev9")
    body["data"]["essentials"]["monitorCondition"] = "Maybe"
    status, problem, _ = await post(body)
    assert status == 400
    assert {e["field"] for e in problem["errors"]} >= {
        "data.essentials.severity",
        "data.essentials.monitorCondition",
    }


async def test_wrong_content_type_is_415_and_a_huge_body_413() -> None:
    assert (await post(common_alert(), headers={"content-type": "text/plain"}))[0] == 415
    huge = json.dumps(common_alert(description="x" * (MAX_BODY_BYTES + 1))).encode()
    assert (await post(huge))[0] == 413


async def test_odd_but_valid_properties_never_break_the_labels() -> None:
    body = common_alert()
    body["data"]["customProperties"] = {
        "bad name!": "x",
        "nested": {"a": 1},
        "flag": True,
        "count": 3,
        "severity": "info",
        "failedReceiver": "pagerduty-oncall",
        "breakGlass": "true",
        "long": "y" * 5000,
    }
    status, _, queues = await post(body)
    assert status == 202
    alert = only_alert(queues)[1]
    assert "bad name!" not in alert.labels
    assert "nested" not in alert.labels
    assert "flag" not in alert.labels
    assert alert.labels["count"] == "3"
    assert alert.severity == "high"  # a custom property cannot override the mapped severity
    assert "failedReceiver" not in alert.labels  # nor steer the alert away from a receiver
    assert "breakGlass" not in alert.labels
    assert len(alert.labels["long"]) == 256


class _DownQueue(MemoryQueues):
    async def send(self, *args: Any, **kwargs: Any) -> str:
        raise ConnectionError("storage down")


async def test_a_queue_that_is_down_answers_503_with_retry_after() -> None:
    result = await accept_azure_monitor_alert(
        IncomingRequest("POST", JSON, json.dumps(common_alert()).encode()),
        deps=AzureMonitorDeps(_DownQueue()),
    )
    assert result.status == 503
    assert "Retry-After" in result.headers
