"""BambooHR field-based payloads become canonical HR events, one per employee entry."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import InvalidPayloadError
from shared.hr.bamboohr import map_bamboohr_payload
from tests.events import load_event


def _entry(action: str = "Created", **fields: Any) -> dict[str, Any]:
    return {
        "id": "123",
        "action": action,
        "timestamp": "2026-12-01T08:00:00+0000",
        "fields": fields,
        "changedFields": [],
    }


HIRE_FIELDS = {
    "Employee #": "E1001",
    "Work Email": "ada@contoso.com",
    "First Name": "Ada",
    "Last Name": "Lovelace",
    "Department": "Finance",
    "Country": "GB",
    "supervisorEmail": "grace@contoso.com",
    "Hire Date": "2026-12-01",
    "Job Title": "Analyst",
}


def test_created_entry_becomes_a_hire_with_every_mapped_field() -> None:
    [mapped] = map_bamboohr_payload({"employees": [_entry(**HIRE_FIELDS)]})
    assert mapped.event.to_payload() == load_event("employee_hired")
    assert mapped.dedupe_key == "123:Created:2026-12-01T08:00:00+0000"


def test_values_wrapped_as_value_objects_are_unwrapped() -> None:
    [mapped] = map_bamboohr_payload(
        {"employees": [_entry(workEmail={"value": "ada@contoso.com"}, department={"value": "Finance"})]}
    )
    assert mapped.event.data.user_principal_name == "ada@contoso.com"
    assert mapped.event.data.department == "Finance"
    # No employee number posted: the BambooHR id identifies the person.
    assert mapped.event.data.employee_id == "123"


def test_updated_entry_lists_canonical_changes() -> None:
    entry = _entry("Updated", **{"Employee #": "E1001", "Department": "Risk", "Job Title": "Lead"})
    entry["changedFields"] = ["Department", "Job Title"]
    [mapped] = map_bamboohr_payload({"employees": [entry]})
    assert mapped.event.type == "employee.updated"
    assert mapped.event.data.changes == ["department"]


def test_status_becoming_inactive_is_a_termination() -> None:
    entry = _entry(
        "Updated", **{"Employee #": "E1001", "Status": "Inactive", "Termination Date": "2026-12-31"}
    )
    entry["changedFields"] = ["Status"]
    [mapped] = map_bamboohr_payload({"employees": [entry]})
    assert mapped.event.type == "employee.terminated"
    assert mapped.event.to_payload()["data"] == {"employeeId": "E1001", "terminationDate": "2026-12-31"}


def test_deleted_entry_is_a_termination() -> None:
    [mapped] = map_bamboohr_payload({"employees": [_entry("Deleted")]})
    assert mapped.event.type == "employee.terminated"
    assert mapped.event.data.employee_id == "123"


def test_configured_field_map_overrides_defaults() -> None:
    entry = _entry(
        **{"Work Email": "ada.personal@example.com", "Entra UPN": "ada@contoso.com", "Office": "gb"}
    )
    [mapped] = map_bamboohr_payload(
        {"employees": [entry]}, field_map={"Entra UPN": "userPrincipalName", "Office": "country"}
    )
    assert mapped.event.data.user_principal_name == "ada@contoso.com"
    assert mapped.event.data.country == "GB"


@pytest.mark.parametrize(
    ("name", "code"), [("United Kingdom", "GB"), ("germany", "DE"), ("USA", "US"), ("fr", "FR")]
)
def test_country_names_become_iso_codes(name: str, code: str) -> None:
    [mapped] = map_bamboohr_payload({"employees": [_entry(Country=name)]})
    assert mapped.event.data.country == code


def test_zero_dates_and_empty_values_are_absent() -> None:
    [mapped] = map_bamboohr_payload({"employees": [_entry(**{"Hire Date": "0000-00-00", "Department": ""})]})
    assert mapped.event.data.hire_date is None
    assert mapped.event.data.department is None


def test_several_employees_make_several_events_with_distinct_keys() -> None:
    second = {**_entry(**HIRE_FIELDS), "id": "124"}
    events = map_bamboohr_payload({"employees": [_entry(**HIRE_FIELDS), second]})
    assert len({e.dedupe_key for e in events}) == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "body"),
        ({}, "employees"),
        ({"employees": []}, "employees"),
        ({"employees": ["x"]}, "employees[0]"),
        ({"employees": [{**_entry(), "action": "Promoted"}]}, "employees[0].action"),
        ({"employees": [{**_entry(), "id": None}]}, "employees[0].id"),
        ({"employees": [_entry(**{"Work Email": "not-an-email"})]}, "employees[0].fields.Work Email"),
        ({"employees": [_entry(Country="Atlantis")]}, "employees[0].fields.Country"),
        ({"employees": [{**_entry(), "timestamp": "soon"}]}, "employees[0].timestamp"),
        (
            {"employees": [_entry(**HIRE_FIELDS), _entry(**{"Hire Date": "1/12/2026"})]},
            "employees[1].fields.Hire Date",
        ),
    ],
)
def test_bad_payloads_name_the_field_as_bamboohr_calls_it(payload: object, field: str) -> None:
    with pytest.raises(InvalidPayloadError) as exc:
        map_bamboohr_payload(payload)
    assert [e["field"] for e in exc.value.errors] == [field]
