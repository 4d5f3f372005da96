"""Fault rules of the Graph emulator: counted and probabilistic."""

from __future__ import annotations

import pytest

from local.graph_emulator.faults import FaultInjector, FaultRule


def test_a_counted_rule_fails_exactly_count_requests() -> None:
    injector = FaultInjector()
    injector.add(FaultRule.from_json({"status": 503, "count": 2, "method": "POST"}))
    hits = [injector.take("POST", "/v1.0/users") for _ in range(4)]
    assert [rule is not None for rule in hits] == [True, True, False, False]
    assert injector.take("GET", "/v1.0/users") is None


def test_a_probabilistic_rule_fails_about_that_share_and_stays_until_cleared() -> None:
    # GIVEN a 10 % rule without a count, and a fixed seed
    injector = FaultInjector(random_seed=7)
    injector.add(FaultRule.from_json({"status": 429, "probability": 0.1, "retryAfter": 0}))
    # WHEN 5,000 requests pass
    failed = sum(injector.take("GET", "/v1.0/users") is not None for _ in range(5000))
    # THEN about 10 % failed, and the rule is still active
    assert 400 <= failed <= 600
    assert injector.to_json()[0]["probability"] == 0.1
    assert injector.to_json()[0]["remaining"] is None


def test_the_same_seed_draws_the_same_faults() -> None:
    def pattern() -> list[bool]:
        injector = FaultInjector(random_seed=3)
        injector.add(FaultRule.from_json({"status": 503, "probability": 0.5}))
        return [injector.take("GET", "/x") is not None for _ in range(50)]

    assert pattern() == pattern()


def test_a_probabilistic_rule_with_a_count_ends_after_count_faults() -> None:
    injector = FaultInjector(random_seed=1)
    injector.add(FaultRule.from_json({"status": 503, "probability": 1, "count": 3}))
    assert sum(injector.take("GET", "/x") is not None for _ in range(10)) == 3


@pytest.mark.parametrize("probability", [0, -0.1, 1.5, "0.1", True])
def test_an_invalid_probability_is_refused_naming_the_field(probability: object) -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultRule.from_json({"status": 503, "probability": probability})
