"""What the sink remembers and how it answers one delivery; no HTTP here (``server.py`` does that).

A delivery is decided in this order, and recorded whatever the answer: too large (413), an active
injected failure for its kind (that status), over its kind's rate rule (429, a recorded violation),
invalid for its kind (400; 401 for a webhook whose signature does not verify), accepted (2xx).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from local.receiver_sink.incidents import IncidentBook
from local.receiver_sink.limits import (
    DEFAULT_RULES,
    KINDS,
    RateRule,
    SlidingWindowLimiter,
    WindowCounter,
    retry_after_header,
)
from local.receiver_sink.validation import pagerduty_errors, slack_errors, teams_errors

__all__ = [
    "FAIL_STATUSES",
    "MAX_EVENTS",
    "MAX_FAIL_SECONDS",
    "AdminError",
    "Delivery",
    "FailRule",
    "Reply",
    "SinkState",
]

JsonObject = dict[str, Any]
FAIL_STATUSES: Final = (429, 500, 502, 503, 504)
MAX_FAIL_SECONDS: Final = 3600.0
MAX_EVENTS: Final = 100_000
OUTCOMES: Final = ("accepted", "invalid", "unauthorized", "rateLimited", "failed", "tooLarge")
# Recorded request headers: what describes a delivery, never credentials or cookies.
SAFE_HEADERS: Final = (
    "content-type",
    "content-length",
    "transfer-encoding",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "traceparent",
    "x-request-id",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AdminError(ValueError):
    """A bad admin request; ``field`` names the offending field or query parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def to_json(self) -> JsonObject:
        return {"error": {"field": self.field, "message": str(self)}}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: object, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(value).encode(), "application/json", headers or {})

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8", headers or {})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request to a receiver path; ``headers`` have lower-case names."""

    kind: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    size: int
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class FailRule:
    """``POST /_sink/fail``: answer ``status`` to deliveries of ``kind`` (None: all) for ``seconds``."""

    status: int
    seconds: float
    kind: str | None = None
    retry_after: int | None = None

    @classmethod
    def from_json(cls, value: Any) -> FailRule:
        """Raises: AdminError naming the bad field."""
        if not isinstance(value, dict):
            raise AdminError("body", "the body must be a JSON object with status and seconds")
        unknown = sorted(set(value) - {"status", "seconds", "kind", "retryAfter"})
        if unknown:
            raise AdminError(unknown[0], f"unknown field {unknown[0]!r} (status, seconds, kind, retryAfter)")
        status, seconds = _number(value.get("status")), _number(value.get("seconds"))
        if not isinstance(status, int) or status not in FAIL_STATUSES:
            raise AdminError("status", f"status must be one of {', '.join(map(str, FAIL_STATUSES))}")
        if seconds is None or not 0 < seconds <= MAX_FAIL_SECONDS:
            raise AdminError("seconds", f"seconds must be a number > 0 and <= {MAX_FAIL_SECONDS:.0f}")
        kind = value.get("kind")
        if kind is not None and kind not in KINDS:
            raise AdminError("kind", f"kind must be one of {', '.join(KINDS)} (or absent for all)")
        raw_retry = value.get("retryAfter")
        retry_after = _number(raw_retry)
        if raw_retry is not None and (not isinstance(retry_after, int) or not 0 <= retry_after <= 3600):
            raise AdminError("retryAfter", "retryAfter must be whole seconds from 0 to 3600")
        return cls(status, float(seconds), kind, retry_after if isinstance(retry_after, int) else None)


def _number(value: object) -> int | float | None:
    """A JSON number (booleans are not numbers here), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class _Failure:
    rule: FailRule
    until: float
    until_iso: str
    matched: int = 0

    def to_json(self, now: float) -> JsonObject:
        return {
            "kind": self.rule.kind,
            "status": self.rule.status,
            "until": self.until_iso,
            "remainingSeconds": round(max(0.0, self.until - now), 3),
            "matched": self.matched,
        }


def _parse(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def _target(kind: str, path: str, body: Any) -> str:
    """What a rate rule counts per: PagerDuty's routing key, every other kind's URL path."""
    if kind == "pagerduty":
        key = body.get("routing_key") if isinstance(body, dict) else None
        return key if isinstance(key, str) and key else "(no routing_key)"
    return path


class SinkState:
    """Every delivery, PagerDuty's incidents, counts, windows, violations and injected failures."""

    def __init__(
        self,
        *,
        rules: Mapping[str, RateRule | None] | None = None,
        webhook_secrets: Sequence[str] = (),
        max_events: int = MAX_EVENTS,
        on_event: Callable[[JsonObject], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules: dict[str, RateRule | None] = {**DEFAULT_RULES, **(rules or {})}
        self._verifier: Any = None
        if webhook_secrets:
            from shared.hr.signatures import StandardWebhooksVerifier

            self._verifier = StandardWebhooksVerifier(list(webhook_secrets))
        self._max_events = max_events
        self._on_event = on_event
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._seq = 0
        self._reset()

    def _reset(self) -> None:
        self._events: deque[JsonObject] = deque(maxlen=self._max_events)
        self._dropped = 0
        self._incidents = IncidentBook()
        self._counts = {kind: Counter[str]() for kind in KINDS}
        self._windows: dict[tuple[str, str], WindowCounter] = {}
        self._violations: list[JsonObject] = []
        self._failures: dict[str | None, _Failure] = {}
        self._limiters = {k: SlidingWindowLimiter(r) for k, r in self.rules.items() if r is not None}

    # deliveries

    def handle(self, delivery: Delivery) -> Reply:
        """Decide, record and answer one delivery."""
        with self._lock:
            self._seq += 1
            now, at = self._monotonic(), utc_now_iso()
            body = None if delivery.too_large else _parse(delivery.body)
            target = _target(delivery.kind, delivery.path, body)
            self._windows.setdefault((delivery.kind, target), WindowCounter()).add(now)
            event: JsonObject = {
                "seq": self._seq,
                "receivedAt": at,
                "kind": delivery.kind,
                "path": delivery.path,
                "status": 0,
                "outcome": "",
                "headers": {k: v for k, v in delivery.headers.items() if k in SAFE_HEADERS},
                "body": body,
            }
            reply = self._decide(delivery, body, target, now, event)
            event["status"] = reply.status
            counts = self._counts[delivery.kind]
            counts["received"] += 1
            counts[event["outcome"]] += 1
            if len(self._events) == self._events.maxlen:
                self._dropped += 1
            self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        return reply

    def _decide(self, delivery: Delivery, body: Any, target: str, now: float, event: JsonObject) -> Reply:
        kind = delivery.kind
        if delivery.too_large:
            event.update(outcome="tooLarge", bodyBytes=delivery.size)
            return _refusal(kind, 413, "request body too large")
        failure = self._failures.get(kind) or self._failures.get(None)
        if failure is not None and failure.until <= now:
            self._failures = {k: f for k, f in self._failures.items() if f.until > now}
            failure = self._failures.get(kind) or self._failures.get(None)
        if failure is not None:
            failure.matched += 1
            event["outcome"] = "failed"
            retry = failure.rule.retry_after
            if retry is None and failure.rule.status == 429:
                retry = 1
            headers = {"Retry-After": str(retry)} if retry is not None else {}
            return _refusal(kind, failure.rule.status, "injected failure", headers)
        limiter = self._limiters.get(kind)
        wait = limiter.admit(target, now) if limiter is not None else None
        if limiter is not None and wait is not None:
            rule = limiter.rule
            self._violations.append(
                {
                    "seq": event["seq"],
                    "at": event["receivedAt"],
                    "kind": kind,
                    "target": target,
                    "limit": rule.limit,
                    "windowSeconds": rule.window_seconds,
                    "retryAfterSeconds": round(wait, 3),
                }
            )
            event["outcome"] = "rateLimited"
            return _refusal(kind, 429, "rate limited", {"Retry-After": retry_after_header(wait)})
        return self._accept_or_refuse(delivery, body, event)

    def _accept_or_refuse(self, delivery: Delivery, body: Any, event: JsonObject) -> Reply:
        kind = delivery.kind
        if kind == "webhook":
            return self._webhook(delivery, event)
        errors = {"pagerduty": pagerduty_errors, "teams": teams_errors, "slack": slack_errors}[kind](body)
        if errors:
            event.update(outcome="invalid", errors=errors)
            if kind == "pagerduty":
                invalid = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
                return Reply.json(400, invalid)
            if kind == "slack":
                return Reply.text(400, "invalid_payload")
            return Reply.json(400, {"error": {"code": "InvalidRequestContent", "message": "; ".join(errors)}})
        event["outcome"] = "accepted"
        if kind == "pagerduty":
            dedup_key = self._incidents.apply(body, event["receivedAt"])
            return Reply.json(
                202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
            )
        if kind == "slack":
            return Reply.text(200, "ok")
        return Reply(202)

    def _webhook(self, delivery: Delivery, event: JsonObject) -> Reply:
        if self._verifier is None:
            event.update(outcome="accepted", signature="unchecked")
            return Reply.json(200, {"status": "ok"})
        from shared.hr.signatures import SignatureError

        try:
            self._verifier.verify(delivery.headers, delivery.body, now=datetime.now(UTC))
        except SignatureError as exc:
            event.update(outcome="unauthorized", signature="invalid", errors=[str(exc)])
            return Reply.json(401, {"error": str(exc)})
        event.update(outcome="accepted", signature="valid")
        return Reply.json(200, {"status": "ok"})

    # the admin API

    def events(self, kind: str | None = None, since: int = 0) -> list[JsonObject]:
        with self._lock:
            return [e for e in self._events if e["seq"] > since and (kind is None or e["kind"] == kind)]

    def incidents(self, status: str | None = None) -> list[JsonObject]:
        with self._lock:
            return self._incidents.to_json(status)

    def violations(self) -> list[JsonObject]:
        with self._lock:
            return list(self._violations)

    def stats(self) -> JsonObject:
        with self._lock:
            now = self._monotonic()
            kinds = {k: {name: c[name] for name in ("received", *OUTCOMES)} for k, c in self._counts.items()}
            targets = [
                {
                    "kind": kind,
                    "target": target,
                    "deliveries": w.total,
                    "max1s": w.max_1s,
                    "max60s": w.max_60s,
                    "rule": rule.to_json() if (rule := self.rules.get(kind)) is not None else None,
                }
                for (kind, target), w in self._windows.items()
            ]
            return {
                "kinds": kinds,
                "targets": targets,
                "violationCount": len(self._violations),
                "violations": list(self._violations),
                "pagerduty": self._incidents.summary(),
                "rules": {k: r.to_json() if r is not None else None for k, r in self.rules.items()},
                "recordedEvents": len(self._events),
                "droppedEvents": self._dropped,
                "lastSeq": self._seq,
                "failures": [f.to_json(now) for f in self._failures.values() if f.until > now],
            }

    def fail(self, rule: FailRule) -> list[JsonObject]:
        """Start (or replace) the injected failure for ``rule.kind``; return the active failures."""
        with self._lock:
            now = self._monotonic()
            until = datetime.now(UTC) + timedelta(seconds=rule.seconds)
            until_iso = until.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            self._failures[rule.kind] = _Failure(rule, now + rule.seconds, until_iso)
            return [f.to_json(now) for f in self._failures.values() if f.until > now]

    def failures(self) -> list[JsonObject]:
        with self._lock:
            now = self._monotonic()
            return [f.to_json(now) for f in self._failures.values() if f.until > now]

    def end_failures(self, kind: str | None = None) -> None:
        """End the injected failure of ``kind``, or every one when None."""
        with self._lock:
            if kind is None:
                self._failures.clear()
            else:
                self._failures.pop(kind, None)

    def clear(self) -> None:
        """Forget everything (events, incidents, counts, windows, violations, failures); seq continues."""
        with self._lock:
            self._reset()


def _refusal(kind: str, status: int, reason: str, headers: Mapping[str, str] | None = None) -> Reply:
    """A non-2xx answer in the kind's own style."""
    if kind == "slack":
        return Reply.text(status, "rate_limited" if status == 429 else reason, headers)
    if kind == "pagerduty":
        if status == 429:
            message = "Requests for this routing key are arriving too quickly. Please retry later."
            return Reply.json(status, {"status": "throttle event", "message": message}, headers)
        return Reply.json(status, {"status": "error", "message": reason}, headers)
    return Reply.json(status, {"error": {"code": str(status), "message": reason}}, headers)
