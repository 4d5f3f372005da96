"""The new ``policies:`` options in the plan file: defaults off, and every mistake refused with the
field named (config/waveguard.yaml loaded, mutated and validated as the app loads it)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from shared.config import APP_ROOT, parse_plan
from shared.errors import ConfigError
from tests.conftest import PLAN_SECRETS

SOURCE = "config/waveguard.yaml"
EXAMPLE: dict[str, Any] = yaml.safe_load((APP_ROOT / SOURCE).read_text(encoding="utf-8"))


def _parse(mutate: Callable[[dict[str, Any]], None]) -> Any:
    doc = copy.deepcopy(EXAMPLE)
    mutate(doc)
    return parse_plan(yaml.safe_dump(doc, sort_keys=False), PLAN_SECRETS, source=SOURCE)


def _problems(**policies: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(lambda doc: doc["policies"].update(policies))
    return list(caught.value.problems)


def test_every_new_option_is_off_by_default() -> None:
    policies = _parse(lambda doc: None).policies
    assert policies.require_mfa.satisfied_by == []
    assert policies.trusted_locations == []
    assert not policies.sign_in_risk.enabled
    assert not policies.user_risk.enabled
    assert not policies.allowed_countries.enabled
    assert not policies.needs_p2


def test_the_seed_options_parse_and_normalise() -> None:
    policies = _parse(
        lambda doc: doc["policies"].update(
            requireMfa={"satisfiedBy": ["compliantDevice", "domainJoinedDevice"]},
            trustedLocations=[{"name": "Head office", "ipRanges": ["203.0.114.0/24", "2001:4860:10::/48"]}],
            signInRisk={"enabled": True},
            userRisk={"enabled": True},
            allowedCountries={"enabled": True, "countries": ["gb", "UK", "IE"][::2], "outside": "mfa"},
        )
    ).policies
    assert policies.trusted_locations[0].ip_ranges == ["203.0.114.0/24", "2001:4860:10::/48"]
    assert policies.allowed_countries.countries == ["GB", "IE"]
    assert policies.sign_in_risk.block_levels == ["high"]
    assert policies.sign_in_risk.mfa_levels == ["medium"]
    assert policies.user_risk.levels == ["high"]
    assert policies.needs_p2


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"requireMfa": {"satisfiedBy": ["approvedApplication"]}},
            "policies.requireMfa.satisfiedBy[0]: Input should be 'compliantDevice' or 'domainJoinedDevice'",
        ),
        (
            {"requireMfa": {"satisfiedBy": ["compliantDevice", "compliantDevice"]}},
            "policies.requireMfa.satisfiedBy: control 'compliantDevice' is listed twice",
        ),
        (
            {"trustedLocations": [{"name": "Office", "ipRanges": ["203.0.114.7"]}]},
            "policies.trustedLocations[0].ipRanges[0]: expected a CIDR range such as 203.0.114.0/24",
        ),
        (
            {"trustedLocations": [{"name": "Office", "ipRanges": ["203.0.114.7/24"]}]},
            "policies.trustedLocations[0].ipRanges[0]: 203.0.114.7/24 has host bits set; did you mean "
            "203.0.114.0/24?",
        ),
        (
            {"trustedLocations": [{"name": "Office", "ipRanges": ["192.168.1.0/24"]}]},
            "policies.trustedLocations[0].ipRanges[0]: 192.168.1.0/24 is not a public range (private",
        ),
        (
            {"trustedLocations": [{"name": "Office", "ipRanges": ["4.0.0.0/6"]}]},
            "policies.trustedLocations[0].ipRanges[0]: IPv4 ranges must be /8 or narrower, got /6",
        ),
        (
            {"trustedLocations": [{"name": "Office", "ipRanges": []}]},
            "policies.trustedLocations[0].ipRanges: List should have at least 1 item",
        ),
        (
            {
                "trustedLocations": [
                    {"name": "Office", "ipRanges": ["203.0.114.0/24"]},
                    {"name": "office", "ipRanges": ["198.51.101.0/24"]},
                ]
            },
            "policies.trustedLocations: name 'office' is listed twice",
        ),
        (
            {"signInRisk": {"enabled": True, "blockLevels": ["high"], "mfaLevels": ["high"]}},
            "policies.signInRisk: blockLevels and mfaLevels share high",
        ),
        (
            {"signInRisk": {"enabled": True, "blockLevels": [], "mfaLevels": []}},
            "policies.signInRisk: enabled needs at least one level",
        ),
        (
            {"signInRisk": {"enabled": True, "blockLevels": ["severe"]}},
            "policies.signInRisk.blockLevels[0]: Input should be 'low', 'medium' or 'high'",
        ),
        (
            {"userRisk": {"enabled": True, "levels": []}},
            "policies.userRisk.levels: List should have at least 1",
        ),
        (
            {"allowedCountries": {"enabled": True, "countries": []}},
            "policies.allowedCountries: enabled needs at least one country",
        ),
        (
            {"allowedCountries": {"enabled": True, "countries": ["GB", "XX"]}},
            "policies.allowedCountries.countries[1]: expected an ISO 3166-1 alpha-2 country code",
        ),
        (
            {"allowedCountries": {"enabled": True, "countries": ["GB"], "outside": "warn"}},
            "policies.allowedCountries.outside: Input should be 'block' or 'mfa'",
        ),
    ],
)
def test_a_mistake_is_refused_with_the_field_named(options: dict[str, Any], expected: str) -> None:
    problems = _problems(**options)
    assert any(p.startswith(f"{SOURCE}: {expected}") for p in problems), problems
