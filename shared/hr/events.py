"""The canonical HR event and its parser: the one shape every HR provider maps to.

The contract: docs/architecture.md, 'HR events'.

On the wire (camelCase)::

    {"type": "employee.hired", "timestamp": "2026-12-01T08:00:00Z",
     "data": {"employeeId": "E1001", "userPrincipalName": "ada@contoso.com",
              "displayName": "Ada Lovelace", "department": "Finance", "country": "GB",
              "managerUserPrincipalName": "grace@contoso.com", "hireDate": "2026-12-01"}}

``employee.updated`` may say what changed (``changes``: canonical field names) and what the
values were before (``previous``: department, managerUserPrincipalName); ``employee.terminated``
may carry ``terminationDate``. Every type names the person by ``employeeId`` and/or
``userPrincipalName``. Unknown keys are ignored so providers can send more than we read.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.countries import alpha2
from shared.envelope import format_timestamp
from shared.errors import FieldError, InvalidPayloadError, field_errors_of
from shared.upn import UPN_HINT, is_upn

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

EMPLOYEE_HIRED: Final = "employee.hired"
EMPLOYEE_UPDATED: Final = "employee.updated"
EMPLOYEE_TERMINATED: Final = "employee.terminated"
HR_EVENT_TYPES: Final[tuple[str, ...]] = (EMPLOYEE_HIRED, EMPLOYEE_UPDATED, EMPLOYEE_TERMINATED)
HrEventType = Literal["employee.hired", "employee.updated", "employee.terminated"]

# Canonical fields an `employee.updated` may list in `changes`.
ChangedField = Literal[
    "employeeId",
    "userPrincipalName",
    "displayName",
    "department",
    "country",
    "managerUserPrincipalName",
    "hireDate",
]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Entra's employeeId holds 16 characters; HR ids a little longer are accepted and simply not found.
_MAX_ID: Final = 64
_MAX_TEXT: Final = 256
_MAX_UPN: Final = 113  # Entra: 64 before the @, 48 after


def _employee_id(value: Any) -> Any:
    # HR systems often number employees; a JSON number is the same id as its digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_upn(value: str) -> str:
    if not is_upn(value):
        raise PydanticCustomError("upn", UPN_HINT)
    return value


def _check_country(value: str) -> str:
    code = alpha2(value)
    if code is None:
        raise PydanticCustomError(
            "country", "expected an ISO 3166-1 alpha-2 country code such as GB (UK is read as GB)"
        )
    return code


def _parse_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise PydanticCustomError("date", "expected a date such as 2026-12-01")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date", "expected a date such as 2026-12-01") from None


def _parse_timestamp(value: Any) -> Any:
    message = "expected an ISO-8601 timestamp with a zone, e.g. 2026-12-01T08:00:00Z"
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("timestamp", message) from None
    else:
        raise PydanticCustomError("timestamp", message)
    if moment.tzinfo is None:
        raise PydanticCustomError("timestamp", message)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise PydanticCustomError("timestamp", "timestamp out of range") from None


EmployeeId = Annotated[
    str, BeforeValidator(_employee_id), Field(min_length=1, max_length=_MAX_ID, pattern=r"^\S(.*\S)?$")
]
Upn = Annotated[str, Field(max_length=_MAX_UPN), AfterValidator(_check_upn)]
Text = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
Country = Annotated[str, AfterValidator(_check_country)]
IsoDate = Annotated[
    date, BeforeValidator(_parse_date), PlainSerializer(lambda d: d.isoformat(), return_type=str)
]
Timestamp = Annotated[
    datetime, BeforeValidator(_parse_timestamp), PlainSerializer(format_timestamp, return_type=str)
]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class PreviousValues(_Model):
    """What an ``employee.updated`` changed from (lets the worker see a move without a Graph read)."""

    department: Text | None = None
    manager_user_principal_name: Upn | None = None


class EmployeeData(_Model):
    """Who the event is about; which fields are required depends on the event type."""

    employee_id: EmployeeId | None = None
    user_principal_name: Upn | None = None
    display_name: Text | None = None
    department: Text | None = None
    country: Country | None = None
    manager_user_principal_name: Upn | None = None
    hire_date: IsoDate | None = None
    termination_date: IsoDate | None = None
    changes: Annotated[list[ChangedField], Field(max_length=16)] | None = None
    previous: PreviousValues | None = None


class HrEvent(_Model):
    """One canonical HR event; ``to_payload()`` is the queue payload the ``hr-events`` worker reads."""

    type: HrEventType
    timestamp: Timestamp
    data: EmployeeData

    def to_payload(self) -> dict[str, Any]:
        """The wire form (camelCase, absent fields omitted) as a JSON-ready dict."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def subject(self) -> str:
        """The identifier to log for this event: the employee id, else the UPN."""
        return self.data.employee_id or self.data.user_principal_name or ""


def parse_hr_event(obj: object) -> HrEvent:
    """Validate a decoded JSON value as a canonical HR event.

    Raises:
        InvalidPayloadError: ``obj`` is not a valid canonical event; ``errors`` names every bad
            field (``type``, ``data.employeeId``, ...). Nothing else is raised for any JSON value.
    """
    if not isinstance(obj, dict):
        raise _invalid([FieldError(field="body", message=f"expected a JSON object, got {_json_type(obj)}")])
    try:
        event = HrEvent.model_validate(obj)
    except ValidationError as exc:
        raise _invalid(field_errors_of(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: never leak another type
        raise _invalid(
            [FieldError(field="body", message=f"not a valid HR event ({type(exc).__name__})")]
        ) from None
    problems = _rule_errors(event)
    if problems:
        raise _invalid(problems)
    return event


def _rule_errors(event: HrEvent) -> list[FieldError]:
    data = event.data
    problems: list[FieldError] = []
    if data.employee_id is None and data.user_principal_name is None:
        problems.append(
            FieldError(field="data.employeeId", message="give employeeId or userPrincipalName (or both)")
        )
    if event.type != EMPLOYEE_TERMINATED and data.termination_date is not None:
        problems.append(
            FieldError(field="data.terminationDate", message=f"only valid for {EMPLOYEE_TERMINATED}")
        )
    if event.type != EMPLOYEE_UPDATED:
        for name, value in (("changes", data.changes), ("previous", data.previous)):
            if value is not None:
                problems.append(
                    FieldError(field=f"data.{name}", message=f"only valid for {EMPLOYEE_UPDATED}")
                )
    return problems


def _invalid(problems: list[FieldError]) -> InvalidPayloadError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return InvalidPayloadError(f"invalid HR event: {summary}", errors=problems)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
