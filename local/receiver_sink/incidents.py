"""PagerDuty's incident view of the accepted events: one incident per open (routing_key, dedup_key).

Like PagerDuty: a trigger opens an incident or adds to the open one with its dedup_key (an
acknowledged incident stays acknowledged); acknowledge and resolve act on the open incident and are
accepted but ignored when there is none; a trigger after a resolve opens a new incident. A trigger
without a dedup_key gets a generated one, returned in the 202.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["INCIDENT_STATUSES", "Incident", "IncidentBook"]

INCIDENT_STATUSES: Final = ("triggered", "acknowledged", "resolved")


@dataclass
class Incident:
    number: int
    routing_key: str
    dedup_key: str
    first_event_at: str
    last_event_at: str
    status: str = "triggered"
    summary: str | None = None
    severity: str | None = None
    source: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"trigger": 0, "acknowledge": 0, "resolve": 0})

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "routingKey": self.routing_key,
            "dedupKey": self.dedup_key,
            "status": self.status,
            "summary": self.summary,
            "severity": self.severity,
            "source": self.source,
            "firstEventAt": self.first_event_at,
            "lastEventAt": self.last_event_at,
            "acknowledgedAt": self.acknowledged_at,
            "resolvedAt": self.resolved_at,
            "eventCounts": dict(self.counts),
            "eventCount": sum(self.counts.values()),
        }


class IncidentBook:
    """Every incident, oldest first, and the open one per key. Not thread-safe (the sink locks)."""

    def __init__(self) -> None:
        self.incidents: list[Incident] = []
        self._open: dict[tuple[str, str], Incident] = {}
        self.ignored_actions = 0

    def apply(self, event: dict[str, Any], at: str) -> str:
        """Apply one valid event received at ``at``; return its dedup_key."""
        action = str(event["event_action"])
        routing_key = str(event["routing_key"])
        dedup_key = str(event.get("dedup_key") or uuid.uuid4().hex)
        key = (routing_key, dedup_key)
        incident = self._open.get(key)
        if action == "trigger":
            if incident is None:
                incident = Incident(len(self.incidents) + 1, routing_key, dedup_key, at, at)
                self.incidents.append(incident)
                self._open[key] = incident
            payload = event["payload"]
            incident.summary = str(payload["summary"])
            incident.severity = str(payload["severity"])
            incident.source = str(payload["source"])
        elif incident is None:
            self.ignored_actions += 1
            return dedup_key
        elif action == "acknowledge":
            if incident.status == "triggered":
                incident.status, incident.acknowledged_at = "acknowledged", at
        else:
            incident.status, incident.resolved_at = "resolved", at
            del self._open[key]
        incident.counts[action] += 1
        incident.last_event_at = at
        return dedup_key

    def to_json(self, status: str | None = None) -> list[dict[str, Any]]:
        return [i.to_json() for i in self.incidents if status is None or i.status == status]

    def summary(self) -> dict[str, int]:
        by_status = dict.fromkeys(INCIDENT_STATUSES, 0)
        for incident in self.incidents:
            by_status[incident.status] += 1
        return {"incidents": len(self.incidents), **by_status, "ignoredActions": self.ignored_actions}
