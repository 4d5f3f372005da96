"""Wave assignment: the first matching wave in plan order, the new-hire policy, never break-glass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.config import APP_ROOT, RolloutPlan, parse_plan
from shared.rollout.assignment import Assignment, UserFacts, assign_wave
from tests.conftest import PLAN_SECRETS

EXAMPLE_DOC: dict[str, Any] = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
PILOT_GROUP_ID = "0f3c1a52-7a51-4c8e-9d22-1b2b3c4d5e6f"


def _plan(mutate: Callable[[dict[str, Any]], None] = lambda doc: None) -> RolloutPlan:
    doc = copy.deepcopy(EXAMPLE_DOC)
    mutate(doc)
    return parse_plan(yaml.safe_dump(doc, sort_keys=False), PLAN_SECRETS, source="test-plan")


PLAN = _plan()


def test_department_selects_its_wave() -> None:
    # GIVEN a Finance employee / WHEN assigned / THEN the finance-hr wave, naming the selector
    result = assign_wave(PLAN, UserFacts(department="Finance", country="US"))
    assert result == Assignment("finance-hr", "selector", "departments=Finance")


def test_department_match_ignores_case_and_spaces() -> None:
    assert assign_wave(PLAN, UserFacts(department="  marketing ")).wave == "sales-marketing"


def test_first_matching_wave_in_plan_order_wins() -> None:
    # GIVEN an IT-department user who is also in a group of a later wave's department
    def add_it_to_wave_three(doc: dict[str, Any]) -> None:
        doc["waves"][2]["selectors"]["departments"].append("IT")

    result = assign_wave(_plan(add_it_to_wave_three), UserFacts(department="IT"))
    # THEN the earlier wave (pilot) takes them
    assert result.wave == "pilot"


def test_group_membership_by_display_name() -> None:
    facts = UserFacts.of(department="Legal", groups=[("11111111-2222-3333-4444-555555555555", "IT Pilot")])
    assert assign_wave(PLAN, facts) == Assignment("pilot", "selector", "groups=IT pilot")


def test_group_membership_by_id() -> None:
    def by_id(doc: dict[str, Any]) -> None:
        doc["waves"][0]["selectors"]["groups"] = [PILOT_GROUP_ID.upper()]

    facts = UserFacts.of(groups=[(PILOT_GROUP_ID, "Renamed since")])
    assert assign_wave(_plan(by_id), facts).wave == "pilot"
    assert (
        assign_wave(_plan(by_id), UserFacts.of(groups=[("a" * 8 + "-0000-0000-0000-" + "0" * 12, None)])).wave
        == "everyone"
    )


def test_country_selector() -> None:
    def by_country(doc: dict[str, Any]) -> None:
        doc["waves"][2]["selectors"]["countries"] = ["de"]

    result = assign_wave(_plan(by_country), UserFacts(department="Legal", country="de"))
    assert result == Assignment("sales-marketing", "selector", "countries=DE")


def test_explicit_user_selector_ignores_case() -> None:
    def by_user(doc: dict[str, Any]) -> None:
        doc["waves"][1]["selectors"]["users"] = ["Ada.Lovelace@contoso.com"]

    result = assign_wave(_plan(by_user), UserFacts(user_principal_name="ada.lovelace@CONTOSO.com"))
    assert result == Assignment("finance-hr", "selector", "users=Ada.Lovelace@contoso.com")


def test_nobody_selected_goes_to_the_catch_all_wave() -> None:
    assert assign_wave(PLAN, UserFacts(department="Legal", country="FR")) == Assignment(
        "everyone", "catch-all"
    )


def test_user_without_any_facts_goes_to_the_catch_all_wave() -> None:
    assert assign_wave(PLAN, UserFacts()).wave == "everyone"


def test_break_glass_is_never_assigned_even_when_selected() -> None:
    # GIVEN a break-glass account in the IT department and the IT pilot group
    facts = UserFacts.of(
        user_principal_name="BG-admin1@contoso.onmicrosoft.com", department="IT", groups=[("x", "IT pilot")]
    )
    # THEN it gets no wave, and the result says why
    assert assign_wave(PLAN, facts) == Assignment(None, "break-glass")
    assert assign_wave(PLAN, facts, new_hire=True) == Assignment(None, "break-glass")


def test_break_glass_by_object_id() -> None:
    bg_id = "9b0c7f3e-1d2a-4c5b-8e6f-0a1b2c3d4e5f"

    def by_id(doc: dict[str, Any]) -> None:
        doc["breakGlass"]["accounts"].append({"id": bg_id})

    assert not assign_wave(_plan(by_id), UserFacts(user_id=bg_id.upper(), department="IT")).assigned


def test_new_hire_explicit_wave_wins_over_selectors() -> None:
    def explicit(doc: dict[str, Any]) -> None:
        doc["newHires"]["wave"] = "pilot"

    result = assign_wave(_plan(explicit), UserFacts(department="Finance"), new_hire=True)
    assert result == Assignment("pilot", "new-hire-wave", "newHires.wave=pilot")
    # the explicit new-hire wave is for hires only: the membership sync still uses selectors
    assert assign_wave(_plan(explicit), UserFacts(department="Finance")).wave == "finance-hr"


def test_new_hire_auto_uses_selectors_first() -> None:
    assert assign_wave(PLAN, UserFacts(department="Sales"), new_hire=True).wave == "sales-marketing"


def test_new_hire_auto_falls_back_to_the_fallback_wave_before_the_catch_all() -> None:
    def fallback_pilot(doc: dict[str, Any]) -> None:
        doc["newHires"]["fallbackWave"] = "pilot"

    result = assign_wave(_plan(fallback_pilot), UserFacts(department="Legal"), new_hire=True)
    assert result == Assignment("pilot", "fallback-wave", "newHires.fallbackWave=pilot")
    # not a hire: the catch-all wave
    assert assign_wave(_plan(fallback_pilot), UserFacts(department="Legal")).wave == "everyone"


def test_plan_without_catch_all_leaves_unselected_users_unassigned() -> None:
    def no_catch_all(doc: dict[str, Any]) -> None:
        doc["waves"] = doc["waves"][:3]
        doc["newHires"]["fallbackWave"] = "pilot"

    plan = _plan(no_catch_all)
    assert assign_wave(plan, UserFacts(department="Legal")) == Assignment(None, "unmatched")
    assert assign_wave(plan, UserFacts(department="Legal"), new_hire=True).wave == "pilot"


def test_user_facts_of_normalises_group_ids_and_names() -> None:
    facts = UserFacts.of(groups=[("ABC", "IT Pilot"), ("", None)])
    assert facts.group_ids == frozenset({"abc"})
    assert facts.group_names == frozenset({"it pilot"})


@pytest.mark.parametrize("new_hire", [False, True])
@given(
    department=st.one_of(
        st.none(), st.sampled_from(["IT", "Finance", "HR", "Sales", "Legal"]), st.text(max_size=8)
    ),
    country=st.one_of(st.none(), st.text(max_size=3)),
    upn=st.one_of(st.none(), st.sampled_from(["bg-admin1@contoso.onmicrosoft.com", "ada@contoso.com"])),
    group_names=st.frozensets(st.sampled_from(["it pilot", "other"]), max_size=2),
)
def test_any_user_gets_a_known_wave_or_a_reason(
    new_hire: bool, department: str | None, country: str | None, upn: str | None, group_names: frozenset[str]
) -> None:
    # GIVEN any facts / WHEN assigned / THEN a wave of the plan, or none only for break-glass
    facts = UserFacts(
        user_principal_name=upn, department=department, country=country, group_names=group_names
    )
    result = assign_wave(PLAN, facts, new_hire=new_hire)
    if upn and upn.startswith("bg-"):
        assert result == Assignment(None, "break-glass")
    else:
        assert result.wave in {wave.name for wave in PLAN.waves}


def _crowded_plan(doc: dict[str, Any]) -> None:
    """Selectors that overlap across waves and kinds: the order rules decide every case."""
    waves = doc["waves"]
    waves[0]["selectors"] = {
        "departments": ["IT", " Finance "],
        "users": ["Ada@Contoso.com"],
        "groups": ["IT Pilot", "10000000-0000-0000-0000-000000000001"],
    }
    waves[1]["selectors"] = {
        "departments": ["finance", "Legal"],
        "countries": ["GB", "DE"],
        "users": ["bob@contoso.com"],
    }
    waves[2]["selectors"] = {"countries": ["FR"], "groups": ["Sales Team"], "users": ["ada@contoso.com"]}


CROWDED = _plan(_crowded_plan)
_DEPARTMENTS = ["IT", "it", " Finance", "FINANCE ", "Legal", "Sales", "", "  "]
_COUNTRIES = ["GB", "gb ", "DE", "FR", "US", "", " "]
_UPNS = ["ada@contoso.com", "ADA@CONTOSO.COM", "bob@contoso.com", "eve@contoso.com", "", None]
_GROUPS = [
    ("g1", "IT Pilot"),
    ("g2", "it pilot"),
    ("10000000-0000-0000-0000-000000000001", None),
    ("g3", "Sales Team"),
]


@settings(max_examples=400, deadline=None)
@example(plan=CROWDED, upn="eve@contoso.com", department="Legal", country="GB", groups=[], break_glass=False)
@example(plan=CROWDED, upn="bob@contoso.com", department="IT", country=None, groups=[], break_glass=False)
@given(
    plan=st.sampled_from([PLAN, CROWDED]),
    upn=st.sampled_from(_UPNS),
    department=st.sampled_from([*_DEPARTMENTS, None]),
    country=st.sampled_from([*_COUNTRIES, None]),
    groups=st.lists(st.sampled_from(_GROUPS), max_size=3),
    break_glass=st.booleans(),
)
def test_compiled_selectors_assign_exactly_as_the_plan_reads_literally(
    plan: RolloutPlan,
    upn: str | None,
    department: str | None,
    country: str | None,
    groups: list[tuple[str, str | None]],
    break_glass: bool,
) -> None:
    from bench.assignment_speed import reference_assign

    if break_glass:
        upn = plan.break_glass.accounts[0].user_principal_name.upper()  # type: ignore[union-attr]
    facts = UserFacts.of(user_principal_name=upn, department=department, country=country, groups=groups)
    assert assign_wave(plan, facts) == reference_assign(plan, facts)


def test_remembered_department_answers_belong_to_their_plan_and_stay_bounded() -> None:
    from shared.rollout.assignment import _HITS_KEPT, _compiled

    # GIVEN two plans that place the same department in different waves, assigned alternately
    for _ in range(3):
        assert assign_wave(PLAN, UserFacts(department=" Finance ")).wave == "finance-hr"
        assert assign_wave(CROWDED, UserFacts(department=" Finance ")).wave == "pilot"
    # WHEN a tenant shows more distinct department values than are remembered
    for n in range(_HITS_KEPT + 10):
        assert assign_wave(PLAN, UserFacts(department=f"Team {n}", country=f"X{n}")).reason == "catch-all"
    # THEN memory stays bounded and the answers stay right
    compiled = _compiled(PLAN)
    assert len(compiled.department_hits) <= _HITS_KEPT
    assert len(compiled.country_hits) <= _HITS_KEPT
    assert assign_wave(PLAN, UserFacts(department="HR", country="gb")).selector == "departments=HR"
    assert assign_wave(PLAN, UserFacts(department="   ")).reason == "catch-all"
