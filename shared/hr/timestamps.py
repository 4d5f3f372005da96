"""Total parsers for the timestamps HR senders put in headers: a bad value is None, never an exception.

Unauthenticated input reaches these before any signature is checked, so nothing they are given may
raise (``datetime.fromtimestamp(999999999999)`` overflows; ``9999-12-31T23:59:59-01:00`` cannot be
converted to UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_iso_instant", "parse_unix_seconds"]

# Unix seconds of 9999-12-31T23:59:59Z: anything later is no real delivery time.
_MAX_UNIX_SECONDS: Final = 253_402_300_799
_MAX_TEXT: Final = 64


def parse_unix_seconds(text: str) -> datetime | None:
    """Integer seconds since the epoch as an aware UTC datetime, or None (not digits, absurd, too long)."""
    if not text or len(text) > 12 or not text.isascii() or not text.isdigit():
        return None
    seconds = int(text)
    if seconds > _MAX_UNIX_SECONDS:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_iso_instant(text: str) -> datetime | None:
    """An ISO-8601 date-time with a zone, in UTC; None when zoneless, malformed or out of range."""
    if not text or len(text) > _MAX_TEXT or not text.isascii():
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None or moment.utcoffset() is None:
            return None
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
