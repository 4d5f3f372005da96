"""BambooHR field-based webhooks: verify ``X-BambooHR-Signature`` and map ``employees[]`` to canonical events.

Signature, per BambooHR's documentation ("Webhooks" → Security,
https://documentation.bamboohr.com/docs/webhooks, and its PHP example)::

    X-BambooHR-Timestamp: <when the request was sent>
    X-BambooHR-Signature: hash_hmac('sha256', <raw request body> . <X-BambooHR-Timestamp>, <private key>)

i.e. the lower-case hex HMAC-SHA256, keyed with the webhook's private key as text, over the raw
body immediately followed by the timestamp header's text (no separator). The timestamp is
checked with the same tolerance as Standard Webhooks; BambooHR documents it as ISO 8601
(``2026-01-31T18:42:00+0000``) and some accounts send Unix seconds, so both are accepted.

Payload (field-based / "Global" webhooks, https://documentation.bamboohr.com/docs/field-based-webhooks)::

    {"employees": [{"id": "123", "action": "Created" | "Updated" | "Deleted",
                    "timestamp": "2026-01-31T18:42:00+0000",
                    "fields": {"Work Email": "ada@contoso.com", ...},   # values may be {"value": ...}
                    "changedFields": ["Department"]}]}

Field names are BambooHR's English names unless the webhook gives them aliases, so the default
map knows both (``Work Email`` and ``workEmail``); ``hrProviders.bamboohr.fieldMap`` adds or
overrides entries (their field → our canonical field).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.countries import country_code
from shared.errors import FieldError, InvalidPayloadError
from shared.hr.events import (
    EMPLOYEE_HIRED,
    EMPLOYEE_TERMINATED,
    EMPLOYEE_UPDATED,
    HrEvent,
    parse_hr_event,
)
from shared.hr.signatures import DEFAULT_TOLERANCE, SignatureError, check_freshness
from shared.hr.timestamps import parse_iso_instant, parse_unix_seconds

__all__ = [
    "DEFAULT_FIELD_MAP",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "BambooHrEvent",
    "map_bamboohr_payload",
    "sign_bamboohr",
    "verify_bamboohr",
]

HEADER_SIGNATURE: Final = "x-bamboohr-signature"
HEADER_TIMESTAMP: Final = "x-bamboohr-timestamp"

# Their field (English name or API alias) -> canonical field. "Location" is a site name in
# BambooHR, not a country; map it in fieldMap only where locations are named by ISO code.
DEFAULT_FIELD_MAP: Final[Mapping[str, str]] = {
    "employeeNumber": "employeeId",
    "Employee #": "employeeId",
    "workEmail": "userPrincipalName",
    "Work Email": "userPrincipalName",
    "displayName": "displayName",
    "Display Name": "displayName",
    "department": "department",
    "Department": "department",
    "country": "country",
    "Country": "country",
    "supervisorEmail": "managerUserPrincipalName",
    "Supervisor Email": "managerUserPrincipalName",
    "hireDate": "hireDate",
    "Hire Date": "hireDate",
    "terminationDate": "terminationDate",
    "Termination Date": "terminationDate",
}
# Used to compose displayName when no display-name field is posted.
_FIRST_NAMES: Final = ("preferredName", "Preferred Name", "firstName", "First Name")
_LAST_NAMES: Final = ("lastName", "Last Name")
_STATUS_FIELDS: Final = ("status", "Status", "employmentHistoryStatus", "Employment Status")
_ACTIONS: Final[Mapping[str, str]] = {
    "Created": EMPLOYEE_HIRED,
    "Updated": EMPLOYEE_UPDATED,
    "Deleted": EMPLOYEE_TERMINATED,
}
# BambooHR writes an unset date as all zeros.
_EMPTY_VALUES: Final = ("", "0000-00-00")
_MAX_EMPLOYEES: Final = 500


@dataclass(frozen=True, slots=True)
class BambooHrEvent:
    """One canonical event from one ``employees[]`` entry.

    ``dedupe_key`` (``<id>:<action>:<timestamp>``) is the same for every redelivery of the entry.
    """

    event: HrEvent
    dedupe_key: str


def sign_bamboohr(private_key: str, timestamp: str, body: bytes) -> str:
    """The ``X-BambooHR-Signature`` BambooHR sends for ``body`` at ``timestamp`` (hex HMAC-SHA256)."""
    return hmac.new(private_key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def verify_bamboohr(
    headers: Mapping[str, str],
    body: bytes,
    *,
    private_key: str,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> datetime:
    """Check the BambooHR signature headers of one delivery; returns the delivery time.

    ``headers`` must have lower-case names.

    Raises:
        SignatureError: a header is missing or malformed, the timestamp is outside the
            tolerance, or the signature does not match the private key.
    """
    timestamp_text = headers.get(HEADER_TIMESTAMP, "").strip()
    signature = headers.get(HEADER_SIGNATURE, "").strip().lower()
    if not timestamp_text:
        raise SignatureError("missing X-BambooHR-Timestamp header")
    if not signature:
        raise SignatureError("missing X-BambooHR-Signature header")
    moment = _parse_delivery_time(timestamp_text)
    check_freshness(moment, now=now, tolerance=tolerance, header="X-BambooHR-Timestamp")
    expected = sign_bamboohr(private_key, timestamp_text, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
        raise SignatureError("X-BambooHR-Signature does not match the private key")
    return moment


def map_bamboohr_payload(
    payload: object, *, field_map: Mapping[str, str] | None = None
) -> list[BambooHrEvent]:
    """Canonical events for every entry of a field-based BambooHR payload, in order.

    Raises:
        InvalidPayloadError: the payload is not ``{"employees": [...]}`` or an entry does not
            make a valid canonical event; ``errors`` names fields as ``employees[i].<field>``.
    """
    entries = _entries(payload)
    fields_map = _effective_field_map(field_map or {})
    events: list[BambooHrEvent] = []
    problems: list[FieldError] = []
    for index, entry in enumerate(entries):
        where = f"employees[{index}]"
        try:
            events.append(_map_entry(entry, fields_map, where))
        except InvalidPayloadError as exc:
            problems.extend(exc.errors)
    if problems:
        raise _invalid(problems)
    return events


def _effective_field_map(configured: Mapping[str, str]) -> dict[str, str]:
    # A configured source for a canonical field replaces every default source of that field,
    # so a mapped "Entra UPN" wins over the default "Work Email".
    targeted = set(configured.values())
    effective = dict(configured)  # first: a configured source is read before any default
    for theirs, ours in DEFAULT_FIELD_MAP.items():
        if ours not in targeted:
            effective.setdefault(theirs, ours)
    return effective


def _entries(payload: object) -> list[object]:
    if not isinstance(payload, dict):
        raise _invalid([FieldError(field="body", message="expected a JSON object with an employees array")])
    entries = payload.get("employees")
    if not isinstance(entries, list) or not entries:
        raise _invalid([FieldError(field="employees", message="expected a non-empty array")])
    if len(entries) > _MAX_EMPLOYEES:
        raise _invalid([FieldError(field="employees", message=f"at most {_MAX_EMPLOYEES} entries")])
    return entries


@dataclass(frozen=True, slots=True)
class _Entry:
    bamboo_id: str
    action: str
    timestamp: str
    values: dict[str, Any]
    changed: list[str]


def _read_entry(entry: object, where: str) -> _Entry:
    if not isinstance(entry, dict):
        raise _invalid([FieldError(field=where, message="expected an object")])
    problems: list[FieldError] = []
    bamboo_id = _scalar_text(entry.get("id"))
    action = entry.get("action")
    timestamp = entry.get("timestamp")
    raw_fields = entry.get("fields") or {}
    changed = entry.get("changedFields") or []
    if bamboo_id is None:
        problems.append(FieldError(field=f"{where}.id", message="expected the employee id"))
    if not isinstance(action, str) or action not in _ACTIONS:
        problems.append(FieldError(field=f"{where}.action", message="expected Created, Updated or Deleted"))
    if not isinstance(timestamp, str) or len(timestamp) > 64:
        problems.append(FieldError(field=f"{where}.timestamp", message="expected an ISO-8601 timestamp"))
    if not isinstance(raw_fields, dict):
        problems.append(FieldError(field=f"{where}.fields", message="expected an object"))
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        problems.append(FieldError(field=f"{where}.changedFields", message="expected an array of names"))
    if problems or bamboo_id is None:
        raise _invalid(problems)
    return _Entry(bamboo_id, str(action), str(timestamp), _plain_values(dict(raw_fields)), list(changed))


def _map_entry(raw: object, field_map: Mapping[str, str], where: str) -> BambooHrEvent:
    entry = _read_entry(raw, where)
    data, sources = _canonical_data(entry.values, field_map)
    # Without an HR employee number the BambooHR id is the best stable identifier we have.
    if "employeeId" not in data:
        data["employeeId"], sources["employeeId"] = entry.bamboo_id, "id"
    event_type = _event_type(entry.action, entry.values, entry.changed)
    if event_type == EMPLOYEE_UPDATED:
        changes = sorted({field_map[c] for c in entry.changed if field_map.get(c) in _CHANGEABLE})
        if changes:
            data["changes"] = changes
    if event_type != EMPLOYEE_TERMINATED:
        data.pop("terminationDate", None)
    canonical = {"type": event_type, "timestamp": entry.timestamp, "data": data}
    try:
        event = parse_hr_event(canonical)
    except InvalidPayloadError as exc:
        raise _invalid([_rename(e, where, sources) for e in exc.errors]) from None
    key = f"{entry.bamboo_id}:{entry.action}:{entry.timestamp}"
    return BambooHrEvent(event=event, dedupe_key=key)


_CHANGEABLE: Final = frozenset(
    {
        "employeeId",
        "userPrincipalName",
        "displayName",
        "department",
        "country",
        "managerUserPrincipalName",
        "hireDate",
    }
)


def _plain_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    # Some webhook formats wrap each value as {"value": ...}; unwrap to the value itself.
    plain: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        plain[name] = value
    return plain


def _canonical_data(
    values: Mapping[str, Any], field_map: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The canonical ``data`` and, for error messages, which of their fields each value came from."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for theirs, ours in field_map.items():
        value = values.get(theirs)
        if ours in data or value is None or (isinstance(value, str) and value.strip() in _EMPTY_VALUES):
            continue
        if isinstance(value, str):
            value = value.strip()
            if ours == "country":
                # BambooHR stores country names ("United Kingdom"); unknown names stay as sent
                # so validation names the field.
                value = country_code(value) or value
        data[ours] = value
        sources[ours] = f"fields.{theirs}"
    if "displayName" not in data:
        first = _first_text(values, _FIRST_NAMES)
        last = _first_text(values, _LAST_NAMES)
        name = " ".join(part for part in (first, last) if part)
        if name:
            data["displayName"] = name
            sources["displayName"] = "fields"
    return data, sources


def _event_type(action: str, values: Mapping[str, Any], changed: list[str]) -> str:
    # A termination in BambooHR is an Updated whose status became Inactive / Terminated.
    if action == "Updated":
        for name in _STATUS_FIELDS:
            status = values.get(name)
            if (
                name in changed
                and isinstance(status, str)
                and status.strip().lower() in ("inactive", "terminated")
            ):
                return EMPLOYEE_TERMINATED
    return _ACTIONS[action]


def _parse_delivery_time(text: str) -> datetime:
    moment = parse_unix_seconds(text) if text.isdigit() else parse_iso_instant(text)
    if moment is None:
        raise SignatureError(
            "X-BambooHR-Timestamp is not an ISO-8601 timestamp with a time zone or Unix seconds"
        )
    return moment


def _scalar_text(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 64:
        return value.strip()
    return None


def _first_text(values: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _rename(error: FieldError, where: str, sources: Mapping[str, str]) -> FieldError:
    # Name the field as the sender knows it: employees[0].fields.Work Email, not data.userPrincipalName.
    field = error["field"]
    if field.startswith("data."):
        ours = field.removeprefix("data.").split(".")[0]
        return FieldError(field=f"{where}.{sources.get(ours, ours)}", message=error["message"])
    return FieldError(field=f"{where}.{field}", message=error["message"])


def _invalid(problems: list[FieldError]) -> InvalidPayloadError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return InvalidPayloadError(f"invalid BambooHR payload: {summary}", errors=problems)
