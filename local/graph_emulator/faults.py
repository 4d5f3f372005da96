"""Injected faults: the next ``count`` requests matching a method and a path regex fail as told."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

from local.graph_emulator.errors import DEFAULT_CODES, GraphError, JsonObject

FAULT_FIELDS = {"status", "count", "retryAfter", "method", "path", "code", "message", "probability"}


@dataclass
class FaultRule:
    """One injected fault and how many more requests it will fail.

    With ``probability`` the rule fails each matching request with that chance (``count`` then
    defaults to unlimited, ``None``): a steady fault rate for fault campaigns.
    """

    status: int
    count: int | None = 1
    retry_after: float | None = None
    method: str | None = None
    path: re.Pattern[str] | None = None
    code: str = ""
    message: str = ""
    probability: float | None = None
    hits: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None

    def error(self) -> GraphError:
        headers = {"Retry-After": _format_seconds(self.retry_after)} if self.retry_after is not None else {}
        message = self.message or f"Injected fault ({self.status}) from the Graph emulator."
        return GraphError(
            self.status, self.code or DEFAULT_CODES.get(self.status, "UnknownError"), message, headers=headers
        )

    def to_json(self) -> JsonObject:
        return {
            "status": self.status,
            "remaining": self.count,
            "probability": self.probability,
            "hits": self.hits,
            "retryAfter": self.retry_after,
            "method": self.method,
            "path": self.path.pattern if self.path is not None else None,
            "code": self.code or DEFAULT_CODES.get(self.status, "UnknownError"),
        }

    @classmethod
    def from_json(cls, raw: object) -> FaultRule:
        """Parse the admin API's fault object.

        Raises:
            ValueError: a field is unknown, missing or invalid (the message names it).
        """
        if not isinstance(raw, dict):
            raise ValueError("a fault must be a JSON object")
        unknown = set(raw) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        status = raw.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status between 400 and 599, got {status!r}")
        probability = _optional_probability(raw.get("probability"))
        count = raw.get("count", 1 if probability is None else None)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError(f"count must be a whole number of at least 1, got {count!r}")
        return cls(
            status=status,
            count=count,
            probability=probability,
            retry_after=_optional_seconds(raw.get("retryAfter")),
            method=_optional_method(raw.get("method")),
            path=_optional_regex(raw.get("path")),
            code=_optional_text(raw, "code"),
            message=_optional_text(raw, "message"),
        )


def _optional_probability(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"probability must be a number above 0 and at most 1, got {value!r}")
    return float(value)


def _optional_seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"retryAfter must be a number of seconds (0 or more), got {value!r}")
    return float(value)


def _optional_method(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
        raise ValueError(f"method must be one of GET, POST, PATCH, PUT, DELETE, got {value!r}")
    return value.upper()


def _optional_regex(value: object) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"path must be a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"path is not a valid regular expression: {exc}") from None


def _optional_text(raw: dict[str, object], name: str) -> str:
    value = raw.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _format_seconds(seconds: float) -> str:
    """Whole seconds as an integer ("2"), fractions as given ("1.5")."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(seconds)


class FaultInjector:
    """The active fault rules; the first matching rule with a count left (and, for a rule with a
    probability, whose draw hits) answers a request. Draws come from one seeded generator."""

    def __init__(self, random_seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(random_seed)

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that fails this request (its count is spent), or None."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                return rule
        return None

    def to_json(self) -> list[JsonObject]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]
