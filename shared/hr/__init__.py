"""HR webhooks in: the canonical HR event, signature checks, provider adapters and the ingress logic."""

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
    "parse_hr_event",
]
