"""The emulator's $filter parser: what matches, what is refused, and the error it gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.graph_emulator.errors import GraphError
from local.graph_emulator.odata_filter import FilterRules, parse_filter
from local.graph_emulator.resources.shapes import USER_FILTERS

ADA = {
    "id": "1",
    "userPrincipalName": "ada@contoso.com",
    "department": "Finance",
    "employeeId": "E1001",
    "accountEnabled": True,
    "country": "GB",
}
GRACE = {
    "id": "2",
    "userPrincipalName": "grace@contoso.com",
    "department": "IT",
    "employeeId": "E1002",
    "accountEnabled": False,
    "country": "US",
}
ALAN = {
    "id": "3",
    "userPrincipalName": "alan@contoso.com",
    "department": None,
    "employeeId": None,
    "accountEnabled": True,
    "country": None,
}
PEOPLE = [ADA, GRACE, ALAN]


def matching(clause: str, *, advanced: bool = False) -> list[str]:
    predicate = parse_filter(clause, USER_FILTERS, advanced=advanced)
    return [person["id"] for person in PEOPLE if predicate(person)]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("userPrincipalName eq 'ada@contoso.com'", ["1"]),
        ("userPrincipalName eq 'ADA@Contoso.com'", ["1"]),
        ("department eq 'it'", ["2"]),
        ("department in ('Finance', 'IT')", ["1", "2"]),
        ("startswith(userPrincipalName, 'a')", ["1", "3"]),
        ("STARTSWITH(userPrincipalName,'A') and accountEnabled eq true", ["1", "3"]),
        ("department eq 'Finance' or employeeId eq 'E1002'", ["1", "2"]),
        ("(department eq 'Finance' or department eq 'IT') and accountEnabled eq false", ["2"]),
        ("employeeId eq null", ["3"]),
        ("country eq 'gb'", ["1"]),
    ],
)
def test_basic_clauses_match_like_the_directory(clause: str, expected: list[str]) -> None:
    assert matching(clause) == expected


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("department ne 'IT'", ["1", "3"]),
        ("not (department eq 'IT')", ["1", "3"]),
        ("endswith(userPrincipalName, 'CONTOSO.com')", ["1", "2", "3"]),
        ("employeeId ge 'E1002'", ["2"]),
    ],
)
def test_advanced_clauses_work_with_consistency_level(clause: str, expected: list[str]) -> None:
    assert matching(clause, advanced=True) == expected


def test_advanced_clauses_need_the_consistency_level_header() -> None:
    with pytest.raises(GraphError) as raised:
        matching("department ne 'IT'")

    assert raised.value.status == 400
    assert raised.value.code == "Request_UnsupportedQuery"
    assert "ConsistencyLevel: eventual" in raised.value.message


def test_a_property_that_cannot_be_filtered_is_named() -> None:
    with pytest.raises(GraphError) as raised:
        matching("businessPhones eq '123'")

    assert raised.value.message == (
        "Unsupported or invalid query filter clause specified for property 'businessPhones' "
        "of resource 'User'."
    )


@pytest.mark.parametrize(
    ("clause", "detail"),
    [
        ("department eq", "expected a value at the end"),
        ("department eq 'IT' and", "expected a property, a function or '(' at the end"),
        ("department eq 'IT')", "unexpected ')' at position 18"),
        ("department like 'IT'", "unknown operator 'like'"),
        ("department eq 'IT", "unterminated string at position 14"),
        ("department eq #IT", "unexpected '#' at position 14"),
        ("(department eq 'IT'", "expected ')' at the end"),
    ],
)
def test_syntax_errors_say_where(clause: str, detail: str) -> None:
    with pytest.raises(GraphError) as raised:
        matching(clause)

    assert raised.value.status == 400
    assert raised.value.message == f"Invalid filter clause: {detail} in '{clause}'."


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30))
def test_any_quoted_string_round_trips(value: str) -> None:
    # GIVEN any value, quoted the OData way (single quotes doubled)
    person = {"displayName": value}
    literal = value.replace("'", "''")

    # THEN an eq filter on it matches exactly that value, case-insensitively
    assert parse_filter(f"displayName eq '{literal}'", USER_FILTERS)(person)
    assert not parse_filter(f"displayName eq '{literal}x'", USER_FILTERS)(person)


SIGN_INS = [
    {"id": "a", "createdDateTime": "2024-05-01T09:59:59.9999999Z"},
    {"id": "b", "createdDateTime": "2024-05-01T10:00:00Z"},
    {"id": "c", "createdDateTime": "2024-05-01T12:30:00.5Z"},
]
TIME_RULES = FilterRules(
    resource="SignIn", properties={"createdDateTime": frozenset({"eq", "ge", "le", "gt", "lt"})}
)


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("createdDateTime ge 2024-05-01T10:00:00Z", ["b", "c"]),
        ("createdDateTime lt 2024-05-01T10:00:00Z", ["a"]),
        ("createdDateTime gt 2024-05-01T11:00:00+01:00", ["c"]),
        ("createdDateTime eq 2024-05-01T10:00:00.000Z", ["b"]),
    ],
)
def test_unquoted_datetimes_compare_as_instants(clause: str, expected: list[str]) -> None:
    predicate = parse_filter(clause, TIME_RULES, advanced=True)

    assert [s["id"] for s in SIGN_INS if predicate(s)] == expected


def test_an_impossible_datetime_is_a_syntax_error() -> None:
    with pytest.raises(GraphError, match="invalid date and time"):
        parse_filter("createdDateTime ge 2024-13-45T10:00:00Z", TIME_RULES, advanced=True)
