"""What in the live Require MFA policy stops WaveGuard from counting its groups as covered (a problem:
nobody is moved off per-user MFA), and what the plan itself chose to let through (an exemption)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from shared.config import RolloutPlan, load_plan
from shared.rollout.permfa.coverage import LiveCoverage, policy_problems
from shared.rollout.policies.templates import ENABLED, Exclusions, require_mfa
from tests.conftest import PLAN_SECRETS

ROOT = Path(__file__).resolve().parents[3]
GROUP = "11111111-1111-4111-8111-111111111111"
TRUSTED = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def plan() -> RolloutPlan:
    return load_plan(ROOT / "config" / "waveguard.yaml", PLAN_SECRETS)


def _policy(**kwargs: Any) -> dict[str, Any]:
    exclusions = Exclusions(
        ("33333333-3333-4333-8333-333333333333",), ("44444444-4444-4444-8444-444444444444",)
    )
    return require_mfa("WaveGuard - Require MFA", exclusions, group_ids=[GROUP], state=ENABLED, **kwargs)


def _with_plan(plan: RolloutPlan, satisfied_by: list[str]) -> RolloutPlan:
    policies = plan.policies.model_copy(
        update={"require_mfa": plan.policies.require_mfa.model_copy(update={"satisfied_by": satisfied_by})}
    )
    return plan.model_copy(update={"policies": policies})


def test_the_policy_waveguard_renders_covers_its_groups_without_problem(plan: RolloutPlan) -> None:
    assert policy_problems(_policy(), plan, frozenset()) == ([], [])


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda p: p["conditions"]["users"].update(excludeRoles=["62e90394-69f5-4237-9190-012177145e10"]),
            "roles",
        ),
        (lambda p: p["conditions"]["users"]["excludeUsers"].append("GuestsOrExternalUsers"), "guests"),
        (
            lambda p: p["conditions"]["users"].update(
                excludeGuestsOrExternalUsers={"guestOrExternalUserTypes": "b2bCollaborationGuest"}
            ),
            "guests",
        ),
        (
            lambda p: p["conditions"]["applications"].update(
                excludeApplications=["00000002-0000-0ff1-ce00-000000000000"]
            ),
            "every application",
        ),
        (
            lambda p: p["conditions"]["applications"].update(includeApplications=["Office365"]),
            "every application",
        ),
        (lambda p: p["conditions"].update(clientAppTypes=["browser"]), "client app types"),
        (lambda p: p["conditions"].update(platforms={"includePlatforms": ["windows"]}), "platforms"),
        (lambda p: p["conditions"].update(signInRiskLevels=["high"]), "risk levels"),
        (
            lambda p: p["conditions"].update(
                locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}
            ),
            "trusted networks",
        ),
        (lambda p: p["grantControls"].update(builtInControls=["mfa", "compliantDevice"]), "device controls"),
        (lambda p: p["grantControls"].update(builtInControls=["compliantDevice"]), "does not require MFA"),
    ],
)
def test_anything_that_narrows_mfa_beyond_the_users_is_a_problem(
    plan: RolloutPlan, edit: Any, problem: str
) -> None:
    policy = copy.deepcopy(_policy())
    edit(policy)
    problems, _ = policy_problems(policy, plan, frozenset())
    assert any(problem in p for p in problems), problems
    coverage = LiveCoverage(frozenset({GROUP}), frozenset(), tuple(problems))
    assert not coverage.covers(GROUP, "55555555-5555-4555-8555-555555555555")


def test_the_plans_own_relaxations_are_exemptions_said_out_loud(plan: RolloutPlan) -> None:
    relaxed = _with_plan(plan, ["compliantDevice"])
    policy = _policy(satisfied_by=["compliantDevice"], trusted_location_ids=[TRUSTED])
    problems, exemptions = policy_problems(policy, relaxed, frozenset({TRUSTED}))
    assert problems == []
    assert any("compliantDevice stands in for MFA" in e for e in exemptions)
    assert any("trusted network" in e for e in exemptions)
    # AND an MFA AND compliant device grant requires MFA: nothing to say
    strict = copy.deepcopy(_policy())
    strict["grantControls"] = {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]}
    assert policy_problems(strict, plan, frozenset()) == ([], [])
