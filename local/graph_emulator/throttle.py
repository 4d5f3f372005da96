"""The write budget: a token bucket modelled on Graph's identity write limit (3,000 per 150 s).

Every write (POST, PATCH, PUT, DELETE, and each write inside a ``$batch``) takes one token; tokens
refill continuously at ``capacity / per_seconds`` per second. An empty bucket answers 429 with a
``Retry-After`` computed from the refill time.

Retry-After format: by default the integer ceiling of the wait in seconds (at least 1). Graph's
docs show fractional values such as ``2.128``; ``retry_after_format="decimal"`` emits those
(three decimals) so a client's parser can be tested against them. Kiota's retry handler only
parses integers and falls back to exponential backoff on a fraction, which is why integer is the
default.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from local.graph_emulator.errors import JsonObject

GRAPH_WRITE_CAPACITY = 3000
GRAPH_WRITE_SECONDS = 150.0
RETRY_AFTER_FORMATS = ("integer", "decimal")


@dataclass(frozen=True)
class WriteBudget:
    """How many writes the bucket holds and how fast it refills."""

    capacity: int = GRAPH_WRITE_CAPACITY
    per_seconds: float = GRAPH_WRITE_SECONDS
    retry_after_format: str = "integer"

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or isinstance(self.capacity, bool) or self.capacity < 1:
            raise ValueError(
                f"writeBudget.capacity must be a whole number of at least 1, got {self.capacity!r}"
            )
        if not isinstance(self.per_seconds, int | float) or self.per_seconds <= 0:
            raise ValueError(f"writeBudget.perSeconds must be a number above 0, got {self.per_seconds!r}")
        if self.retry_after_format not in RETRY_AFTER_FORMATS:
            raise ValueError(
                f"writeBudget.retryAfterFormat must be one of {', '.join(RETRY_AFTER_FORMATS)}, "
                f"got {self.retry_after_format!r}"
            )

    @classmethod
    def time_scaled(cls, factor: float, *, retry_after_format: str = "integer") -> WriteBudget:
        """Graph's budget shrunk in time by ``factor``: 10 gives 300 writes per 15 s."""
        if factor <= 0:
            raise ValueError(f"writeBudget.timeScale must be above 0, got {factor!r}")
        capacity = max(1, round(GRAPH_WRITE_CAPACITY / factor))
        return cls(capacity, GRAPH_WRITE_SECONDS / factor, retry_after_format)

    @classmethod
    def from_json(cls, raw: object) -> WriteBudget:
        """Parse the admin API's ``writeBudget`` object.

        Raises:
            ValueError: a field is missing, unknown or out of range (the message names it).
        """
        if not isinstance(raw, dict):
            raise ValueError("writeBudget must be an object")
        unknown = set(raw) - {"capacity", "perSeconds", "timeScale", "retryAfterFormat"}
        if unknown:
            raise ValueError(f"writeBudget has unknown fields: {', '.join(sorted(unknown))}")
        fmt = raw.get("retryAfterFormat", "integer")
        if "timeScale" in raw:
            if "capacity" in raw or "perSeconds" in raw:
                raise ValueError("writeBudget.timeScale cannot be combined with capacity/perSeconds")
            return cls.time_scaled(_number(raw["timeScale"], "writeBudget.timeScale"), retry_after_format=fmt)
        return cls(
            capacity=raw.get("capacity", GRAPH_WRITE_CAPACITY),
            per_seconds=_number(raw.get("perSeconds", GRAPH_WRITE_SECONDS), "writeBudget.perSeconds"),
            retry_after_format=fmt,
        )

    def to_json(self) -> JsonObject:
        return {
            "capacity": self.capacity,
            "perSeconds": self.per_seconds,
            "retryAfterFormat": self.retry_after_format,
        }


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


class TokenBucket:
    """A thread-safe token bucket with an injectable clock (for fast unit tests)."""

    def __init__(self, budget: WriteBudget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._tokens = float(budget.capacity)
        self._updated = clock()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.budget.capacity / self.budget.per_seconds

    def available(self) -> float:
        """Tokens in the bucket now."""
        with self._lock:
            self._refill()
            return self._tokens

    def take(self) -> float | None:
        """Take one token; None on success, else the seconds until one will be there."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self.rate

    def retry_after_header(self, wait_seconds: float) -> str:
        """The Retry-After value for a wait, in the configured format."""
        if self.budget.retry_after_format == "decimal":
            return f"{max(wait_seconds, 0.001):.3f}"
        return str(max(1, math.ceil(wait_seconds)))

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.budget.capacity), self._tokens + elapsed * self.rate)
        self._updated = now
