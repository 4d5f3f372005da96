"""Countries from the iso3166 package: strict codes for events and selectors, lenient names for HR
systems that store them."""

from __future__ import annotations

import pytest
from iso3166 import countries

from shared.countries import ALIASES, alpha2, country_code


@pytest.mark.parametrize(
    ("value", "code"), [("GB", "GB"), ("gb", "GB"), (" fr ", "FR"), ("UK", "GB"), ("uk", "GB"), ("NO", "NO")]
)
def test_alpha2_takes_codes_iso_assigns_and_uk(value: str, code: str) -> None:
    assert alpha2(value) == code


@pytest.mark.parametrize("value", ["XX", "GBR", "826", "Germany", "", "G", "1A", "ÜK"])
def test_alpha2_refuses_what_is_not_a_code(value: str) -> None:
    assert alpha2(value) is None


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("United Kingdom", "GB"),
        ("united  kingdom ", "GB"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("USA", "US"),
        ("DEU", "DE"),
        ("826", "GB"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("South Korea", "KR"),
        ("Türkiye", "TR"),
        ("Côte d'Ivoire", "CI"),
        ("fr", "FR"),
    ],
)
def test_country_code_reads_codes_official_names_and_aliases(value: str, code: str) -> None:
    assert country_code(value) == code


def test_every_official_name_and_code_resolves_and_unknown_names_do_not() -> None:
    for country in countries:
        assert country_code(country.name) == country.alpha2
        assert country_code(country.alpha3) == country.alpha2
        assert alpha2(country.alpha2.lower()) == country.alpha2
    assert len(list(countries)) >= 249
    assert country_code("Atlantis") is None
    assert country_code("   ") is None


def test_every_alias_names_a_country_iso_assigns() -> None:
    codes = {c.alpha2 for c in countries}
    assert set(ALIASES.values()) <= codes
