"""The canonical HR event parser: valid events round-trip, every bad field is named, nothing else raises."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import InvalidPayloadError
from shared.hr import EMPLOYEE_HIRED, HrEvent, parse_hr_event
from tests.events import load_event

HIRED: dict[str, Any] = load_event("employee_hired")


def _with(path: str, value: Any, base: dict[str, Any] = HIRED) -> dict[str, Any]:
    event = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return event


_DELETE = object()


def _fields(exc: pytest.ExceptionInfo[InvalidPayloadError]) -> list[str]:
    return [e["field"] for e in exc.value.errors]


def test_design_example_round_trips_to_the_same_payload() -> None:
    # GIVEN the example event of docs/architecture.md, 'HR events'
    # WHEN it is parsed and turned back into a queue payload
    event = parse_hr_event(copy.deepcopy(HIRED))
    # THEN the fields are typed and the payload equals the input
    assert event.type == EMPLOYEE_HIRED
    assert event.timestamp == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert event.data.hire_date == date(2026, 12, 1)
    assert event.data.manager_user_principal_name == "grace@contoso.com"
    assert event.to_payload() == HIRED
    assert event.subject == "E1001"


def test_payload_survives_json_and_parses_again() -> None:
    event = parse_hr_event(copy.deepcopy(HIRED))
    again = parse_hr_event(json.loads(json.dumps(event.to_payload())))
    assert again == event


def test_normalises_numbers_country_case_and_zones() -> None:
    # GIVEN an HR system that numbers employees, writes lower-case countries and local time
    raw = _with(
        "data.employeeId", 1001, _with("data.country", "gb", _with("timestamp", "2026-12-01T09:00:00+01:00"))
    )
    event = parse_hr_event(raw)
    # THEN the canonical event holds strings, upper-case ISO codes and UTC
    assert event.data.employee_id == "1001"
    assert event.data.country == "GB"
    assert event.to_payload()["timestamp"] == "2026-12-01T08:00:00Z"
    # AND UK, which HR systems write for the United Kingdom, is GB (what Entra and the plan use)
    assert parse_hr_event(_with("data.country", "UK", raw)).data.country == "GB"


def test_minimal_events_of_each_type() -> None:
    updated = parse_hr_event(
        {
            "type": "employee.updated",
            "timestamp": "2026-12-02T08:00:00Z",
            "data": {
                "userPrincipalName": "ada@contoso.com",
                "department": "Risk",
                "changes": ["department"],
                "previous": {"department": "Finance"},
            },
        }
    )
    assert updated.data.changes == ["department"]
    assert updated.data.previous is not None
    assert updated.data.previous.department == "Finance"
    terminated = parse_hr_event(
        {
            "type": "employee.terminated",
            "timestamp": "2026-12-03T08:00:00Z",
            "data": {"employeeId": "E1001", "terminationDate": "2026-12-31"},
        }
    )
    assert terminated.data.termination_date == date(2026, 12, 31)
    assert terminated.to_payload()["data"] == {"employeeId": "E1001", "terminationDate": "2026-12-31"}


def test_unknown_keys_are_ignored() -> None:
    event = parse_hr_event(_with("data.costCenter", "CC-1", _with("source", "workday")))
    assert "costCenter" not in event.to_payload()["data"]
    assert "source" not in event.to_payload()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("type", "employee.promoted", "type"),
        ("type", _DELETE, "type"),
        ("timestamp", "yesterday", "timestamp"),
        ("timestamp", "2026-12-01T08:00:00", "timestamp"),
        ("timestamp", 1764576000, "timestamp"),
        ("data", _DELETE, "data"),
        ("data", [], "data"),
        ("data.employeeId", "", "data.employeeId"),
        ("data.employeeId", True, "data.employeeId"),
        ("data.employeeId", " E1 ", "data.employeeId"),
        ("data.userPrincipalName", "ada", "data.userPrincipalName"),
        ("data.managerUserPrincipalName", "grace at contoso", "data.managerUserPrincipalName"),
        ("data.country", "GBR", "data.country"),
        ("data.country", "XX", "data.country"),
        ("data.country", 44, "data.country"),
        ("data.hireDate", "01/12/2026", "data.hireDate"),
        ("data.hireDate", "2026-02-30", "data.hireDate"),
        ("data.displayName", "x" * 300, "data.displayName"),
        ("data.terminationDate", "2026-12-31", "data.terminationDate"),
        ("data.changes", ["department"], "data.changes"),
    ],
)
def test_bad_field_is_named(path: str, value: Any, field: str) -> None:
    # GIVEN a hire with one bad field WHEN it is parsed THEN the error names exactly that field
    with pytest.raises(InvalidPayloadError) as exc:
        parse_hr_event(_with(path, value))
    assert _fields(exc) == [field]
    assert field in str(exc.value)


def test_person_must_be_identified() -> None:
    raw = _with("data.employeeId", _DELETE, _with("data.userPrincipalName", _DELETE))
    with pytest.raises(InvalidPayloadError) as exc:
        parse_hr_event(raw)
    assert _fields(exc) == ["data.employeeId"]
    assert "userPrincipalName" in exc.value.errors[0]["message"]


def test_every_bad_field_is_listed_at_once() -> None:
    raw = _with("type", "nope", _with("data.country", "Britain", _with("data.hireDate", "soon")))
    with pytest.raises(InvalidPayloadError) as exc:
        parse_hr_event(raw)
    assert sorted(_fields(exc)) == ["data.country", "data.hireDate", "type"]


@pytest.mark.parametrize("value", [None, [], "event", 3, 2.5, True])
def test_non_objects_are_rejected_as_body(value: object) -> None:
    with pytest.raises(InvalidPayloadError) as exc:
        parse_hr_event(value)
    assert _fields(exc) == ["body"]


def test_errors_do_not_echo_the_input() -> None:
    # Personal data must not end up in logs or problem responses via the error text.
    with pytest.raises(InvalidPayloadError) as exc:
        parse_hr_event(_with("data.userPrincipalName", "secret-person-name"))
    assert "secret-person-name" not in json.dumps(exc.value.to_dict())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)
_field_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | _json
_data = st.fixed_dictionaries(
    {},
    optional={
        name: _field_values | st.sampled_from(["E1", "ada@contoso.com", "GB", "2026-12-01", "Finance"])
        for name in (
            "employeeId",
            "userPrincipalName",
            "displayName",
            "department",
            "country",
            "managerUserPrincipalName",
            "hireDate",
            "terminationDate",
            "changes",
            "previous",
        )
    },
)
_near_events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["employee.hired", "employee.updated", "employee.terminated", "x"]) | _json,
        "timestamp": st.sampled_from(
            ["2026-12-01T08:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]
        )
        | _json,
        "data": _data | _json,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, _near_events))
def test_arbitrary_json_raises_only_our_validation_error(value: object) -> None:
    # GIVEN any JSON value (and near-miss events) WHEN parsed
    # THEN it is either a valid event that round-trips, or an InvalidPayloadError naming fields
    outcome = _parse_or_error(value)
    if isinstance(outcome, InvalidPayloadError):
        assert outcome.errors
        assert all(e["field"] and e["message"] for e in outcome.errors)
    else:
        assert parse_hr_event(json.loads(json.dumps(outcome.to_payload()))) == outcome


def _parse_or_error(value: object) -> HrEvent | InvalidPayloadError:
    # Any other exception type propagates and fails the property.
    try:
        return parse_hr_event(value)
    except InvalidPayloadError as exc:
        return exc
