"""Alert model, the routing tree, dedupe / grouping / silences, and the receivers.

Workers build an ``Alert`` and call ``raise_alert(sender, alert)``: it lands on the ``alerts``
queue with an id derived from the alert's key and period, so repeats within a period dedupe.
An alert about a wave is also recorded as open (``open_alert``) until it is resolved: the wave's
"no open critical alert" gate reads that record.
"""

from __future__ import annotations

from shared.alerting.model import (
    ALERT_ENVELOPE_TYPE,
    DEFAULT_DEDUPE_PERIOD,
    SEVERITIES,
    Alert,
    Severity,
    alert_envelope,
    raise_alert,
)
from shared.alerting.open_alerts import (
    ALERTS_OPEN_NAMESPACE,
    OpenAlert,
    list_open_alerts,
    open_alert,
    resolve_open_alert,
)

__all__ = [
    "ALERTS_OPEN_NAMESPACE",
    "ALERT_ENVELOPE_TYPE",
    "DEFAULT_DEDUPE_PERIOD",
    "SEVERITIES",
    "Alert",
    "OpenAlert",
    "Severity",
    "alert_envelope",
    "list_open_alerts",
    "open_alert",
    "raise_alert",
    "resolve_open_alert",
]
