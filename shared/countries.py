"""Countries as ISO 3166-1 alpha-2 codes, from the maintained ``iso3166`` package (250 countries:
codes, alpha-3, numeric and official names), plus the few aliases people and HR systems write that
ISO does not list ("UK", "United Kingdom", "South Korea", ...).

- ``alpha2(value)``: strict, for fields that take a code (HR events, plan selectors): a code ISO
  assigns, in any case, or ``UK`` (read as ``GB``, as Entra's ``usageLocation`` and ISO use it).
  ``XX`` or ``GBR`` are not codes: None, and the caller names the field.
- ``country_code(value)``: lenient, for HR systems that store names (BambooHR): the strict codes,
  alpha-3 and numeric codes, official ISO names and the aliases; matching ignores case and extra
  spaces.
"""

from __future__ import annotations

from typing import Final

from iso3166 import countries

__all__ = ["ALIASES", "alpha2", "country_code"]

# Names and codes people use that ISO 3166-1 does not list (its names are the official ones).
ALIASES: Final[dict[str, str]] = {
    "uk": "GB",
    "united kingdom": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united states": "US",
    "america": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "vietnam": "VN",
    "bolivia": "BO",
    "venezuela": "VE",
    "iran": "IR",
    "syria": "SY",
    "laos": "LA",
    "moldova": "MD",
    "tanzania": "TZ",
    "taiwan": "TW",
    "micronesia": "FM",
    "palestine": "PS",
    "vatican": "VA",
    "vatican city": "VA",
    "brunei": "BN",
    "turkey": "TR",
    "czech republic": "CZ",
    "the netherlands": "NL",
    "holland": "NL",
    "ivory coast": "CI",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "east timor": "TL",
    "macedonia": "MK",
    "north macedonia": "MK",
    "dr congo": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "uae": "AE",
    "the bahamas": "BS",
    "the gambia": "GM",
}


def alpha2(value: str) -> str | None:
    """The upper-case alpha-2 code when ``value`` is one ISO assigns (or ``UK``); else None."""
    text = value.strip()
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        return None
    return _lookup(text)


def country_code(value: str) -> str | None:
    """The alpha-2 code for a code (alpha-2, alpha-3, numeric), an official ISO name or a common
    alias ("United Kingdom", "USA", "South Korea"); None when unknown."""
    text = " ".join(value.split())
    return _lookup(text) if text else None


def _lookup(text: str) -> str | None:
    alias = ALIASES.get(text.casefold())
    if alias is not None:
        return alias
    try:
        return str(countries.get(text).alpha2)
    except KeyError:
        return None
