"""The plan's trusted networks: IPv6 has its own widest prefix, non-public ranges (IPv4-mapped,
NAT64, documentation) are refused, Graph's limits are enforced, names carry no stray spaces."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import Policies
from shared.config.plan import MAX_NAMED_LOCATIONS, MAX_RANGES_PER_LOCATION, TrustedLocation


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("2600::/8", "IPv6 ranges must be /32 or narrower, got /8"),
        ("2a00::/31", "IPv6 ranges must be /32 or narrower, got /31"),
        ("6.0.0.0/7", "IPv4 ranges must be /8 or narrower, got /7"),
        ("::ffff:0:0/96", "not a public range"),
        ("::ffff:8.8.8.0/120", "not a public range"),
        ("64:ff9b::/96", "not a public range"),
        ("2001:db8::/32", "not a public range"),
        ("192.0.2.0/24", "not a public range"),
        ("198.51.100.0/24", "not a public range"),
        ("203.0.113.0/24", "not a public range"),
    ],
)
def test_wide_and_non_public_ranges_are_refused(cidr: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrustedLocation.model_validate({"name": "x", "ipRanges": [cidr]})


@pytest.mark.parametrize("cidr", ["2001:4860::/32", "8.0.0.0/8", "203.0.114.0/24", "2a01:111:f400::/48"])
def test_public_ranges_pass(cidr: str) -> None:
    assert TrustedLocation.model_validate({"name": "x", "ipRanges": [cidr]}).ip_ranges == [cidr]


def test_the_same_network_spelt_twice_is_a_duplicate() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        TrustedLocation.model_validate(
            {"name": "x", "ipRanges": ["2001:4860:10::/48", "2001:4860:0010:0::/48"]}
        )


@pytest.mark.parametrize("name", [" HQ", "HQ ", "HQ\t"])
def test_names_with_leading_or_trailing_spaces_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="starts or ends with a space"):
        TrustedLocation.model_validate({"name": name, "ipRanges": ["203.0.114.0/24"]})


def _locations(count: int) -> list[dict[str, Any]]:
    return [{"name": f"n{i}", "ipRanges": [f"{11 + i // 256}.{i % 256}.0.0/16"]} for i in range(count)]


def test_graphs_named_location_limits_are_enforced() -> None:
    assert len(
        Policies.model_validate({"trustedLocations": _locations(MAX_NAMED_LOCATIONS - 1)}).trusted_locations
    )
    with pytest.raises(ValidationError, match="at most 195 named locations"):
        Policies.model_validate({"trustedLocations": _locations(MAX_NAMED_LOCATIONS)})
    ranges = [f"{11 + i // 256}.{i % 256}.0.0/16" for i in range(MAX_RANGES_PER_LOCATION + 1)]
    with pytest.raises(ValidationError, match="at most 2000 items"):
        TrustedLocation.model_validate({"name": "x", "ipRanges": ranges})


def test_norway_read_as_false_by_yaml_gets_a_hint() -> None:
    with pytest.raises(ValidationError, match="quote it: 'NO'"):
        Policies.model_validate({"allowedCountries": {"enabled": True, "countries": ["GB", False]}})
