"""Errors of the state stores."""

from __future__ import annotations

from shared.errors import RetryableError

__all__ = ["ConcurrencyError", "WriteConflict"]


class ConcurrencyError(RetryableError):
    """Someone else changed the value since it was read (ETag mismatch); re-read and retry."""


class WriteConflict(Exception):
    """Raised by backends when a conditional write loses (entity exists / ETag changed)."""
