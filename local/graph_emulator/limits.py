"""Per-API request limits besides the write budget, as sliding windows on the emulator clock.

- ``conditionalAccess``: Graph allows 1 request per second per tenant on the Conditional Access
  APIs and answers 429 **without** Retry-After. Off by default (tests would otherwise pace every
  policy call); turn it on to test a client's own back-off.
- ``registrationDetails``: ``reports/authenticationMethods/userRegistrationDetails`` allows 5
  requests per 10 s and answers 429 with Retry-After. On by default, as on Graph.

Windows are divided by the emulator's time scale (``timeScale: 10`` makes 10 s last 1 s).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from local.graph_emulator.clock import EmulatorClock
from local.graph_emulator.errors import GraphError, JsonObject

CONDITIONAL_ACCESS = "conditionalAccess"
REGISTRATION_DETAILS = "registrationDetails"


@dataclass(frozen=True)
class WindowRule:
    """``requests`` per ``seconds``; ``retry_after`` says whether a 429 carries Retry-After."""

    requests: int
    seconds: float
    retry_after: bool


RULES = {
    CONDITIONAL_ACCESS: WindowRule(requests=1, seconds=1.0, retry_after=False),
    REGISTRATION_DETAILS: WindowRule(requests=5, seconds=10.0, retry_after=True),
}
DEFAULT_ENABLED = {CONDITIONAL_ACCESS: False, REGISTRATION_DETAILS: True}


@dataclass(frozen=True)
class RateLimitConfig:
    """Which limits are on; the admin ``reset`` body's ``rateLimits`` object."""

    conditional_access: bool = DEFAULT_ENABLED[CONDITIONAL_ACCESS]
    registration_details: bool = DEFAULT_ENABLED[REGISTRATION_DETAILS]

    @classmethod
    def from_json(cls, raw: object) -> RateLimitConfig:
        """Parse ``{"conditionalAccess": bool, "registrationDetails": bool}``.

        Raises:
            ValueError: an unknown name or a value that is not a boolean.
        """
        if not isinstance(raw, dict):
            raise ValueError("rateLimits must be an object")
        unknown = set(raw) - set(RULES)
        if unknown:
            raise ValueError(f"rateLimits has unknown fields: {', '.join(sorted(unknown))}")
        for name, value in raw.items():
            if not isinstance(value, bool):
                raise ValueError(f"rateLimits.{name} must be true or false, got {value!r}")
        return cls(
            conditional_access=raw.get(CONDITIONAL_ACCESS, DEFAULT_ENABLED[CONDITIONAL_ACCESS]),
            registration_details=raw.get(REGISTRATION_DETAILS, DEFAULT_ENABLED[REGISTRATION_DETAILS]),
        )

    def enabled(self, name: str) -> bool:
        return {CONDITIONAL_ACCESS: self.conditional_access, REGISTRATION_DETAILS: self.registration_details}[
            name
        ]

    def to_json(self) -> JsonObject:
        return {CONDITIONAL_ACCESS: self.conditional_access, REGISTRATION_DETAILS: self.registration_details}


class SlidingWindow:
    """At most ``rule.requests`` in any window of ``rule.seconds`` (scaled); not thread-safe."""

    def __init__(self, rule: WindowRule, clock: EmulatorClock) -> None:
        self.rule = rule
        self.clock = clock
        self._times: deque[float] = deque()

    def take(self) -> float | None:
        """Count one request; None if allowed, else the real seconds until one would be."""
        now = self.clock.monotonic()
        window = self.clock.scaled(self.rule.seconds)
        while self._times and now - self._times[0] >= window:
            self._times.popleft()
        if len(self._times) < self.rule.requests:
            self._times.append(now)
            return None
        return window - (now - self._times[0])


class RateLimiters:
    """The tenant's windows, rebuilt on every reset."""

    def __init__(self, config: RateLimitConfig, clock: EmulatorClock) -> None:
        self.config = config
        self._windows = {name: SlidingWindow(rule, clock) for name, rule in RULES.items()}

    def check(self, name: str) -> None:
        """Count a request against the limit ``name`` when that limit is on.

        Raises:
            GraphError: 429 TooManyRequests (with Retry-After when Graph sends one).
        """
        if not self.config.enabled(name):
            return
        wait = self._windows[name].take()
        if wait is None:
            return
        rule = RULES[name]
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if rule.retry_after else {}
        raise GraphError(
            429,
            "TooManyRequests",
            f"Too many requests: this API allows {rule.requests} request(s) per "
            f"{rule.seconds:g} seconds per tenant.",
            headers=headers,
        )
