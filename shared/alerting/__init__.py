"""Alert model, the routing tree, dedupe / grouping / silences, and the receivers.

Workers build an ``Alert`` and call ``raise_alert(sender, alert)``: it lands on the ``alerts``
queue with an id derived from the alert's key and period, so repeats within a period dedupe.
"""

from __future__ import annotations

from shared.alerting.model import (
    ALERT_ENVELOPE_TYPE,
    DEFAULT_DEDUPE_PERIOD,
    SEVERITIES,
    Alert,
    AlertSender,
    Severity,
    alert_envelope,
    raise_alert,
)

__all__ = [
    "ALERT_ENVELOPE_TYPE",
    "DEFAULT_DEDUPE_PERIOD",
    "SEVERITIES",
    "Alert",
    "AlertSender",
    "Severity",
    "alert_envelope",
    "raise_alert",
]
