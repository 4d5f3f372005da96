"""Rate rules per receiver kind, the sliding-window limiter that enforces them and the window counters
behind ``/_sink/stats`` (the most deliveries one target saw in any 1-s and any 60-s window)."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_RULES",
    "KINDS",
    "RateRule",
    "SlidingWindowLimiter",
    "WindowCounter",
    "parse_limit",
    "retry_after_header",
]

KINDS: Final = ("pagerduty", "teams", "slack", "webhook")


@dataclass(frozen=True, slots=True)
class RateRule:
    """At most ``limit`` admitted deliveries per target in any ``window_seconds`` (a sliding window)."""

    limit: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.window_seconds > 0:
            raise ValueError("a rate rule needs limit >= 1 and window_seconds > 0")

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "windowSeconds": self.window_seconds}


# PagerDuty Events API v2: 120 events per minute per routing (integration) key.
# Teams Workflows / incoming webhooks: 4 requests per second per webhook.
# Slack incoming webhooks: 1 message per second per webhook; Slack tolerates short bursts but
# guarantees nothing for them, so the sink is strict: a second message within 1 s is a violation.
# Generic webhooks: our own receivers, no documented limit.
DEFAULT_RULES: Final[Mapping[str, RateRule | None]] = {
    "pagerduty": RateRule(120, 60.0),
    "teams": RateRule(4, 1.0),
    "slack": RateRule(1, 1.0),
    "webhook": None,
}


def parse_limit(text: str) -> tuple[str, RateRule | None]:
    """``KIND=N/SECONDS`` (e.g. ``slack=3/1``) or ``KIND=off``, as the ``--limit`` flag takes it.

    Raises:
        ValueError: an unknown kind or a malformed rule.
    """
    kind, sep, value = text.partition("=")
    if not sep or kind not in KINDS:
        raise ValueError(f"--limit expects KIND=N/SECONDS or KIND=off with KIND in {', '.join(KINDS)}")
    if value == "off":
        return kind, None
    count, slash, seconds = value.partition("/")
    try:
        return kind, RateRule(int(count), float(seconds) if slash else 1.0)
    except ValueError:
        raise ValueError(f"--limit {text!r}: expected N/SECONDS with N >= 1 and SECONDS > 0") from None


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (what Slack, Teams and PagerDuty send)."""
    return str(max(1, math.ceil(seconds)))


class SlidingWindowLimiter:
    """Remembers when each target's admitted deliveries arrived; refuses one over the rule.

    Refused deliveries do not count against the window (a sender that backs off gets through).
    Not thread-safe: the sink calls it under its lock.
    """

    def __init__(self, rule: RateRule) -> None:
        self.rule = rule
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, target: str, now: float) -> float | None:
        """None when admitted, else the seconds until the oldest admitted delivery leaves the window."""
        times = self._admitted.setdefault(target, deque())
        cutoff = now - self.rule.window_seconds
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.rule.limit:
            return times[0] - cutoff
        times.append(now)
        return None


class WindowCounter:
    """Every delivery to one target: the total and the most seen in any 1-s and any 60-s window.

    A window ending at each arrival covers every window that matters, so the maxima are exact.
    Arrival times must not decrease (the sink reads the monotonic clock under its lock).
    """

    def __init__(self) -> None:
        self.total = 0
        self.max_1s = 0
        self.max_60s = 0
        self._times: list[float] = []
        self._head = 0

    def add(self, now: float) -> None:
        self.total += 1
        self._times.append(now)
        self._head = bisect_right(self._times, now - 60.0, lo=self._head)
        in_60s = len(self._times) - self._head
        in_1s = len(self._times) - bisect_right(self._times, now - 1.0, lo=self._head)
        self.max_60s = max(self.max_60s, in_60s)
        self.max_1s = max(self.max_1s, in_1s)
        if self._head > 1024 and self._head * 2 > len(self._times):
            del self._times[: self._head]
            self._head = 0
