"""Queue, route and table names: the one place these constants live.

Handlers, the CLI, infra and the local stack import them from here instead of repeating
literals, so renaming a queue is a one-line change.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALERTS",
    "ALL_QUEUES",
    "GROUP_CHANGES",
    "HR_EVENTS",
    "POISON_SUFFIX",
    "REGISTRATION_URL",
    "RISK_EVENTS",
    "ROUTE_ALERTS_AZURE_MONITOR",
    "ROUTE_GRAPH_LIFECYCLE",
    "ROUTE_GRAPH_NOTIFICATIONS",
    "ROUTE_HEALTH",
    "ROUTE_HEALTH_DETAILS",
    "ROUTE_HELPDESK_JIRA",
    "ROUTE_HELPDESK_TICKETS",
    "ROUTE_HR_BAMBOOHR",
    "ROUTE_HR_EVENTS",
    "ROUTE_REPORT",
    "TABLE_AUDIT",
    "TABLE_IDEMPOTENCY",
    "TABLE_STATE",
    "WAVE_WORK",
    "is_poison",
    "poison",
    "source_of_poison",
]

# Storage queues (see docs/architecture.md, 'Queues').
# Azure queue names: 3-63 chars, lowercase letters, digits, dashes.
HR_EVENTS: Final = "hr-events"
GROUP_CHANGES: Final = "group-changes"  # Graph change notifications; the subscriptions are planned
RISK_EVENTS: Final = "risk-events"  # planned: risk and sign-in signals (only its poison archive runs today)
ALERTS: Final = "alerts"
WAVE_WORK: Final = "wave-work"
ALL_QUEUES: Final[tuple[str, ...]] = (HR_EVENTS, GROUP_CHANGES, RISK_EVENTS, ALERTS, WAVE_WORK)

# The Functions host moves a message here after maxDequeueCount failed attempts.
POISON_SUFFIX: Final = "-poison"

# HTTP routes, relative to host.json's routePrefix ("api"): POST /api/hr/events, ...
ROUTE_HR_EVENTS: Final = "hr/events"
ROUTE_HR_BAMBOOHR: Final = "hr/bamboohr"
ROUTE_HELPDESK_TICKETS: Final = "helpdesk/tickets"
ROUTE_HELPDESK_JIRA: Final = "helpdesk/jira"
ROUTE_GRAPH_NOTIFICATIONS: Final = "graph/notifications"
ROUTE_GRAPH_LIFECYCLE: Final = "graph/lifecycle"
# planned (docs/architecture.md, 'Not built yet'): no function serves it yet
ROUTE_ALERTS_AZURE_MONITOR: Final = "alerts/azure-monitor"
ROUTE_HEALTH: Final = "health"
ROUTE_HEALTH_DETAILS: Final = "health/details"
ROUTE_REPORT: Final = "report"  # the rollout report (function key)

# Azure Tables (alphanumeric, 3-63 chars, not starting with a digit).
TABLE_IDEMPOTENCY: Final = "wgidempotency"
TABLE_STATE: Final = "wgstate"
TABLE_AUDIT: Final = "wgaudit"

# Where a user registers MFA methods (linked from the TAP e-mail and the nudges).
REGISTRATION_URL: Final = "https://aka.ms/mysecurityinfo"


def poison(queue_name: str) -> str:
    """The poison queue the host uses for ``queue_name`` (``hr-events`` -> ``hr-events-poison``)."""
    return f"{queue_name}{POISON_SUFFIX}"


def is_poison(queue_name: str) -> bool:
    """True for a poison queue name."""
    return queue_name.endswith(POISON_SUFFIX)


def source_of_poison(queue_name: str) -> str:
    """The queue a poison queue belongs to (``alerts-poison`` -> ``alerts``).

    Raises:
        ValueError: ``queue_name`` is not a poison queue name.
    """
    if not is_poison(queue_name):
        raise ValueError(
            f"{queue_name!r} is not a poison queue (expected a name ending in {POISON_SUFFIX!r})"
        )
    return queue_name[: -len(POISON_SUFFIX)]
