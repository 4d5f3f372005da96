"""The Identity Protection budget on a fake clock, its configuration, and detection building rules."""

from __future__ import annotations

from typing import Any

import pytest

from local.graph_emulator.app import EmulatorConfig
from local.graph_emulator.clock import EmulatorClock
from local.graph_emulator.errors import GraphError
from local.graph_emulator.resources.identity_protection import (
    IdentityProtectionBucket,
    IdentityProtectionBudget,
    IdentityProtectionState,
    add_detections,
    build_detection,
)
from local.graph_emulator.store import TenantStore

NOW = "2025-03-01T12:00:00.000000Z"


class FakeTime:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def bucket(
    budget: IdentityProtectionBudget, time_scale: float = 1.0
) -> tuple[IdentityProtectionBucket, FakeTime]:
    fake = FakeTime()
    return IdentityProtectionBucket(budget, EmulatorClock(time_scale, monotonic=fake)), fake


def test_the_default_budget_is_two_requests_of_burst_then_one_a_second() -> None:
    limiter, fake = bucket(IdentityProtectionBudget())
    limiter.take()
    limiter.take()

    with pytest.raises(GraphError) as refused:
        limiter.take()

    assert (refused.value.status, refused.value.code) == (429, "TooManyRequests")
    assert refused.value.headers == {}
    fake.now += 0.5
    with pytest.raises(GraphError):
        limiter.take()
    fake.now += 0.5
    limiter.take()


def test_the_bucket_never_holds_more_than_its_capacity() -> None:
    limiter, fake = bucket(IdentityProtectionBudget(capacity=2))
    fake.now += 3600

    assert limiter.available() == 2.0


def test_a_time_scale_refills_faster() -> None:
    limiter, fake = bucket(IdentityProtectionBudget(capacity=1), time_scale=10)
    limiter.take()

    fake.now += 0.1

    limiter.take()


def test_a_disabled_budget_never_refuses() -> None:
    limiter, _ = bucket(IdentityProtectionBudget(enabled=False, capacity=1))

    for _ in range(100):
        limiter.take()


def test_fill_puts_every_token_back() -> None:
    limiter, _ = bucket(IdentityProtectionBudget(capacity=3))
    for _ in range(3):
        limiter.take()

    limiter.fill()

    assert limiter.available() == 3.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (False, IdentityProtectionBudget(enabled=False)),
        (True, IdentityProtectionBudget()),
        ({}, IdentityProtectionBudget()),
        (
            {"capacity": 5, "refillPerSecond": 2.5},
            IdentityProtectionBudget(capacity=5, refill_per_second=2.5),
        ),
    ],
)
def test_the_budget_parses_from_json(raw: Any, expected: IdentityProtectionBudget) -> None:
    assert IdentityProtectionBudget.from_json(raw) == expected


def test_a_reset_body_keeps_the_startup_budget_unless_it_names_one() -> None:
    startup = EmulatorConfig(identity_protection_budget=IdentityProtectionBudget(capacity=7))

    kept = startup.updated_from_json({"seed": "empty"})
    changed = startup.updated_from_json({"identityProtectionBudget": {"enabled": False}})

    assert kept.identity_protection_budget.capacity == 7
    assert changed.identity_protection_budget.enabled is False


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"capacity": 1.5}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"refillPerSecond": 0}, "refillPerSecond"),
        ({"refillPerSecond": "1"}, "refillPerSecond"),
        ({"enabled": 1}, "enabled"),
        ([], "must be true, false or an object"),
    ],
)
def test_a_bad_budget_names_its_field(raw: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        IdentityProtectionBudget.from_json(raw)


def directory() -> tuple[TenantStore, str]:
    store = TenantStore()
    user = store.add_user(
        {"userPrincipalName": "ada@contoso.com", "displayName": "Ada", "usageLocation": "NL"}
    )
    return store, str(user["id"])


def test_a_sign_in_detection_gets_graphs_defaults_from_the_user() -> None:
    store, user_id = directory()

    built = build_detection(
        store, {"userId": user_id, "riskLevel": "low", "riskEventType": "unfamiliarFeatures"}, "d", NOW
    )

    assert built["userPrincipalName"] == "ada@contoso.com"
    assert (built["activity"], built["detectionTimingType"], built["riskState"]) == (
        "signin",
        "realtime",
        "atRisk",
    )
    assert built["detectedDateTime"] == built["activityDateTime"] == built["lastUpdatedDateTime"] == NOW
    assert (built["location"]["city"], built["location"]["countryOrRegion"]) == ("Amsterdam", "NL")


def test_a_state_without_a_detail_gets_the_matching_one() -> None:
    store, user_id = directory()

    built = build_detection(
        store,
        {"userId": user_id, "riskLevel": "low", "riskEventType": "passwordSpray", "riskState": "remediated"},
        "d",
        NOW,
    )

    assert (built["riskState"], built["riskDetail"]) == ("remediated", "userPerformedSecuredPasswordReset")
    assert built["detectionTimingType"] == "offline"


def test_a_confirmed_compromised_user_stays_so_when_a_lower_detection_arrives() -> None:
    store, user_id = directory()
    state = store.extension("identityProtection", IdentityProtectionState)
    state.risky_users[user_id] = {
        "id": user_id,
        "riskState": "confirmedCompromised",
        "riskLevel": "high",
        "riskDetail": "adminConfirmedUserCompromised",
        "riskLastUpdatedDateTime": "2025-01-01T00:00:00.000000Z",
    }
    low = build_detection(
        store, {"userId": user_id, "riskLevel": "low", "riskEventType": "newCountry"}, "d", NOW
    )

    add_detections(store, [low], NOW)

    risky = state.risky_users[user_id]
    assert (risky["riskState"], risky["riskLevel"], risky["riskLastUpdatedDateTime"]) == (
        "confirmedCompromised",
        "high",
        NOW,
    )
