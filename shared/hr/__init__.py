"""HR webhooks in: the canonical HR event, signature checks, provider adapters and the ingress logic.

``events`` is the contract with the ``hr-events`` worker; ``ingress`` is the HTTP logic the
handler delegates to; ``signatures`` (Standard Webhooks) and ``bamboohr`` are the providers.
"""

from __future__ import annotations

from shared.hr.events import (
    EMPLOYEE_HIRED,
    EMPLOYEE_TERMINATED,
    EMPLOYEE_UPDATED,
    HR_EVENT_TYPES,
    ChangedField,
    EmployeeData,
    HrEvent,
    HrEventType,
    PreviousValues,
    parse_hr_event,
)
from shared.hr.signatures import SignatureError, StandardWebhooksVerifier, sign_standard_webhook

__all__ = [
    "EMPLOYEE_HIRED",
    "EMPLOYEE_TERMINATED",
    "EMPLOYEE_UPDATED",
    "HR_EVENT_TYPES",
    "ChangedField",
    "EmployeeData",
    "HrEvent",
    "HrEventType",
    "PreviousValues",
    "SignatureError",
    "StandardWebhooksVerifier",
    "parse_hr_event",
    "sign_standard_webhook",
]
