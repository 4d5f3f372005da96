"""Azure Monitor alerts in: ``POST /api/alerts/azure-monitor`` (common alert schema) → the ``alerts`` queue.

An Azure Monitor action group's webhook action (with "Enable the common alert schema") calls this
route with the function key as ``?code=``, so metric, log search (Log Analytics, Sentinel's
workspace) and activity log alert rules page through WaveGuard's routing. Every request passes the
same gates, cheapest first:

- ``Content-Type: application/json`` (415) → body ≤ 1 MiB (413) → JSON with ``schemaId``
  ``azureMonitorCommonAlertSchema`` and ``data.essentials`` typed (400 problem JSON naming every bad
  field, never a 5xx);
- the alert: ``essentials.alertRule`` is the ``alertname``; ``essentials.severity`` Sev0 → critical,
  Sev1 → high, Sev2 → medium (PagerDuty's "warning"), Sev3 and Sev4 → info; ``monitorCondition``
  Fired → firing, Resolved → resolved (the same ``alertId``, so it resolves what Fired raised);
  ``customProperties`` and log search ``dimensions`` become labels (a ``UserPrincipalName``-like
  dimension becomes ``user``), so routes and inhibition rules can match them;
- one ``alert`` envelope on ``alerts``, its id derived from the alert id and condition (a webhook
  Azure Monitor retries enqueues the same id); 202. If the queue cannot take it: 503, and Azure
  Monitor retries.

This path never imports Graph.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any, Final

from shared.alerting.model import Alert, Severity, alert_envelope
from shared.errors import FieldError, InvalidPayloadError
from shared.http_ingress import IncomingRequest, IngressResult
from shared.http_problem import problem
from shared.names import ALERTS
from shared.queues import Sender
from shared.state.ports import iso, parse_iso

__all__ = [
    "MAX_BODY_BYTES",
    "SCHEMA_ID",
    "SEVERITY_MAP",
    "AzureMonitorDeps",
    "accept_azure_monitor_alert",
    "parse_common_alert",
]

log = logging.getLogger(__name__)

SCHEMA_ID: Final = "azureMonitorCommonAlertSchema"
MAX_BODY_BYTES: Final = 1024 * 1024
RETRY_AFTER_SECONDS: Final = 10
SEVERITY_MAP: Final[Mapping[str, Severity]] = {
    "Sev0": "critical",
    "Sev1": "high",
    "Sev2": "medium",
    "Sev3": "info",
    "Sev4": "info",
}
CONDITIONS: Final = {"Fired": "firing", "Resolved": "resolved"}
_MAX_TEXT: Final = 1024
_MAX_LABEL: Final = 256
_MAX_LABELS: Final = 20
_LABEL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_USER_DIMENSIONS: Final = frozenset(
    {"userprincipalname", "upn", "user", "account", "accountupn", "targetuserprincipalname"}
)
# Labels WaveGuard sets itself or acts on: an alert rule's custom properties cannot set them (a
# forged ``failedReceiver`` would steer the alert away from PagerDuty; ``breakGlass`` is triage's).
_RESERVED: Final = frozenset({"alertname", "severity", "source", "failedReceiver", "breakGlass"})


@dataclass(frozen=True, slots=True)
class AzureMonitorDeps:
    """Where accepted alerts go."""

    queue: Sender


async def accept_azure_monitor_alert(request: IncomingRequest, *, deps: AzureMonitorDeps) -> IngressResult:
    """Handle one Azure Monitor webhook call."""
    refused = _check_transport(request)
    if refused is not None:
        return refused
    try:
        alert = parse_common_alert(request.body)
    except InvalidPayloadError as exc:
        log.warning("azure monitor alert rejected: %s", ", ".join(e["field"] for e in exc.errors))
        return IngressResult(400, problem(400, exc.message, errors=exc.errors))
    envelope = alert_envelope(alert)
    try:
        await deps.queue.send(ALERTS, envelope)
    except InvalidPayloadError as exc:  # the queue refuses it (too large): the sender's body
        return IngressResult(413, problem(413, f"the alert is too large to queue: {exc.message}"))
    except Exception as exc:
        log.warning("azure monitor alert not queued: %s", type(exc).__name__)
        detail = "the alert could not be queued right now; retry later"
        return IngressResult(503, problem(503, detail), {"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.info(
        "azure monitor alert queued",
        extra={"envelope_id": envelope.id, "alert_status": alert.status, "alert_severity": alert.severity},
    )
    return IngressResult(
        202, {"accepted": 1, "id": envelope.id, "status": alert.status, "severity": alert.severity}
    )


def _check_transport(request: IncomingRequest) -> IngressResult | None:
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    if message.get_content_type() != "application/json":
        return IngressResult(415, problem(415, "expected Content-Type: application/json"))
    if len(request.body) > MAX_BODY_BYTES:
        detail = f"the body is {len(request.body)} bytes; at most {MAX_BODY_BYTES} are accepted"
        return IngressResult(413, problem(413, detail))
    return None


def parse_common_alert(body: bytes) -> Alert:
    """The alert a common-alert-schema body describes.

    Raises:
        InvalidPayloadError: the body is not JSON or not the common alert schema (every bad field named).
    """
    try:
        raw = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidPayloadError.for_field("body", f"not valid JSON: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise InvalidPayloadError.for_field("body", "expected a JSON object")
    if raw.get("schemaId") != SCHEMA_ID:
        raise InvalidPayloadError.for_field(
            "schemaId",
            f"expected {SCHEMA_ID!r} (enable the common alert schema on the action group's webhook)",
        )
    data = raw.get("data")
    essentials = data.get("essentials") if isinstance(data, dict) else None
    if not isinstance(essentials, dict):
        raise InvalidPayloadError.for_field("data.essentials", "expected an object")
    problems: list[FieldError] = []

    def text(name: str, *, required: bool) -> str | None:
        value = essentials.get(name)
        if not required and (value is None or value == ""):
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(
                FieldError(field=f"data.essentials.{name}", message="expected a non-empty string")
            )
            return None
        if len(value) > _MAX_TEXT:
            problems.append(
                FieldError(field=f"data.essentials.{name}", message=f"at most {_MAX_TEXT} characters")
            )
            return None
        return value.strip()

    alert_id = text("alertId", required=True)
    rule = text("alertRule", required=True)
    severity = essentials.get("severity")
    if not isinstance(severity, str) or severity not in SEVERITY_MAP:
        problems.append(
            FieldError(field="data.essentials.severity", message=f"expected one of {sorted(SEVERITY_MAP)}")
        )
    condition = essentials.get("monitorCondition")
    if not isinstance(condition, str) or condition not in CONDITIONS:
        problems.append(
            FieldError(field="data.essentials.monitorCondition", message="expected 'Fired' or 'Resolved'")
        )
    fired = _time(essentials, "firedDateTime", problems)
    resolved = _time(essentials, "resolvedDateTime", problems)
    description = essentials.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(FieldError(field="data.essentials.description", message="expected a string"))
    signal = text("signalType", required=False)
    service = text("monitoringService", required=False)
    targets = essentials.get("alertTargetIDs")
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        problems.append(
            FieldError(field="data.essentials.alertTargetIDs", message="expected a list of strings")
        )
        targets = None
    custom = data.get("customProperties") if isinstance(data, dict) else None
    if custom is not None and not isinstance(custom, dict):
        problems.append(FieldError(field="data.customProperties", message="expected an object or null"))
        custom = None
    if problems or alert_id is None or rule is None:
        raise InvalidPayloadError(
            f"invalid Azure Monitor alert: {problems[0]['field']}: {problems[0]['message']}", errors=problems
        )
    status = CONDITIONS[str(condition)]
    occurred = (resolved if status == "resolved" else None) or fired
    labels = _labels(custom or {}, _dimensions(data if isinstance(data, dict) else {}))
    labels.update(
        {
            "alertname": rule[:_MAX_LABEL],
            "azureSeverity": str(severity),
            **({"signalType": signal[:_MAX_LABEL]} if signal else {}),
            **({"monitoringService": service[:_MAX_LABEL]} if service else {}),
        }
    )
    summary = (description or "").strip() or f"Azure Monitor alert {rule} {str(condition).lower()}"
    details: dict[str, Any] = {
        "alertId": alert_id,
        "alertRule": rule,
        "monitorCondition": condition,
        "firedDateTime": iso(fired) if fired is not None else None,
        "resolvedDateTime": iso(resolved) if resolved is not None else None,
        "alertTargetIDs": [t[:_MAX_TEXT] for t in list(targets or [])[:20]],
        "originAlertId": origin[:_MAX_TEXT]
        if isinstance(origin := essentials.get("originAlertId"), str)
        else None,
    }
    try:
        return Alert(
            key=f"azure-monitor:{alert_id}",
            severity=SEVERITY_MAP[str(severity)],
            summary=summary[:_MAX_TEXT],
            source="azure-monitor",
            labels=labels,
            details=details,
            status=status,  # type: ignore[arg-type]
            **({"occurred_at": occurred} if occurred is not None else {}),
        )
    except ValueError as exc:
        raise InvalidPayloadError.for_field("data.essentials", str(exc)) from None


def _time(essentials: Mapping[str, Any], name: str, problems: list[FieldError]) -> datetime | None:
    value = essentials.get(name)
    if value is None or value == "":
        return None
    parsed = parse_iso(value) if isinstance(value, str) else None
    if parsed is None:
        problems.append(FieldError(field=f"data.essentials.{name}", message="expected an ISO 8601 date-time"))
    return parsed


def _dimensions(data: Mapping[str, Any]) -> dict[str, str]:
    """Log search alerts split by dimension: ``alertContext.condition.allOf[].dimensions[]``."""
    context = data.get("alertContext")
    condition = context.get("condition") if isinstance(context, dict) else None
    all_of = condition.get("allOf") if isinstance(condition, dict) else None
    found: dict[str, str] = {}
    for item in all_of if isinstance(all_of, list) else []:
        dims = item.get("dimensions") if isinstance(item, dict) else None
        for dim in dims if isinstance(dims, list) else []:
            if (
                isinstance(dim, dict)
                and isinstance(dim.get("name"), str)
                and isinstance(dim.get("value"), str)
            ):
                found.setdefault(dim["name"], dim["value"])
    return found


def _labels(custom: Mapping[str, Any], dimensions: Mapping[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for source in (dimensions, custom):
        for name, value in source.items():
            if len(labels) >= _MAX_LABELS:
                break
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                continue
            text = str(value)[:_MAX_LABEL]
            if name.lower() in _USER_DIMENSIONS and "@" in text:
                labels["user"] = text.lower()
            elif _LABEL_NAME.match(name) and name not in _RESERVED:
                labels[name] = text
    return labels


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")
