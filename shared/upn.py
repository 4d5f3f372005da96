"""One check for user principal names, shared by the plan and the HR events."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["UPN_HINT", "is_upn"]

UPN_HINT: Final = (
    "expected a user principal name such as ada@contoso.com (no spaces, control or invisible characters)"
)

_SHAPE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_upn(value: str) -> bool:
    """True for ``name@domain.tld`` without spaces, control characters (NUL included), bidi
    overrides or isolates (U+202E, U+2066-U+2069), zero-width or other invisible format characters:
    a UPN shown to an operator must read as what it is."""
    if not _SHAPE.match(value):
        return False
    # Cc controls, Cf format (bidi, zero-width), Cs/Co/Cn surrogates, private use, unassigned; Z* separators.
    return not any(unicodedata.category(ch)[0] in "CZ" for ch in value)
