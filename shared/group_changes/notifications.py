"""Graph change and lifecycle notifications in: validate, check ``clientState``, enqueue, 202.

Graph calls ``POST /api/graph/notifications`` (and ``/api/graph/lifecycle``) with the function key
in the URL (it cannot send headers). Every request passes the same gates, cheapest first:

- ``?validationToken=...`` (creating or renewing a subscription): 200 ``text/plain`` with the
  URL-decoded token, within Graph's 10 s, and nothing else happens;
- ``Content-Type: application/json`` (415) → body ≤ 1 MiB (413) → JSON ``{"value": [...]}`` with each
  notification's fields typed (400 problem JSON naming the field, never a 5xx);
- ``clientState`` compared in constant time with the plan's secret: a mismatch is counted and logged
  and never enqueued (the answer is still 202: a forger learns nothing);
- the valid notifications, collapsed to one entry per (subscription, resource, change), go on
  ``group-changes`` as **one** envelope, so the answer comes within Graph's 3 s whatever the batch
  size (a notification only says "look now": the worker reads the group's delta);
- 202. If the queue cannot take it: 503, and Graph delivers again.

The envelope id is derived from the entries, so a batch Graph delivers twice enqueues the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final, Literal

from shared.envelope import Envelope
from shared.errors import FieldError, InvalidPayloadError
from shared.http_ingress import IncomingRequest, IngressResult
from shared.http_problem import problem
from shared.names import GROUP_CHANGES
from shared.queues import Sender

__all__ = [
    "CHANGE_TYPE",
    "LIFECYCLE_EVENTS",
    "LIFECYCLE_TYPE",
    "MAX_BODY_BYTES",
    "NotificationDeps",
    "accept_notifications",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
CHANGE_TYPE: Final = "graph.group.changed"
LIFECYCLE_TYPE: Final = "graph.subscription.lifecycle"
LIFECYCLE_EVENTS: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_CHANGE_TYPES: Final = frozenset({"created", "updated", "deleted"})
_MAX_TEXT: Final = 1024
RETRY_AFTER_SECONDS: Final = 10

Kind = Literal["change", "lifecycle"]


@dataclass(frozen=True, slots=True)
class NotificationDeps:
    """The queue sender and the ``clientState`` subscriptions were created with (None: not configured)."""

    queue: Sender
    client_state: str | None


async def accept_notifications(
    request: IncomingRequest, *, deps: NotificationDeps, kind: Kind
) -> IngressResult:
    """Handle one notification (``kind="change"``) or lifecycle (``"lifecycle"``) request from Graph."""
    token = request.query.get("validationToken")
    if token is not None:
        # Echoed as plain text only: a browser must never sniff the caller's text into HTML.
        return IngressResult(200, text=token, headers={"X-Content-Type-Options": "nosniff"})
    refused = _check_transport(request)
    if refused is not None:
        return refused
    try:
        items = _parse(request.body, kind)
    except InvalidPayloadError as exc:
        log.warning("graph %s notifications rejected: %s", kind, ", ".join(e["field"] for e in exc.errors))
        return IngressResult(400, problem(400, exc.message, errors=exc.errors))
    valid = [item for item in items if _state_matches(item.get("clientState"), deps.client_state)]
    if len(valid) < len(items):
        log.warning(
            "graph notifications with a wrong clientState ignored",
            extra={"mismatched": len(items) - len(valid), "received": len(items), "notification_kind": kind},
        )
    if not valid:
        return IngressResult(202, {"accepted": 0})
    envelope = _envelope(valid, kind)
    try:
        await deps.queue.send(GROUP_CHANGES, envelope)
    except Exception as exc:
        log.warning("graph notifications not queued: %s", type(exc).__name__)
        detail = "the notifications could not be queued right now; retry later"
        return IngressResult(503, problem(503, detail), {"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.info("graph notifications queued", extra={"envelope_id": envelope.id, "entries": len(valid)})
    return IngressResult(202, {"accepted": len(valid)})


def _check_transport(request: IncomingRequest) -> IngressResult | None:
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    if message.get_content_type() != "application/json":
        return IngressResult(415, problem(415, "expected Content-Type: application/json"))
    if len(request.body) > MAX_BODY_BYTES:
        detail = f"the body is {len(request.body)} bytes; at most {MAX_BODY_BYTES} are accepted"
        return IngressResult(413, problem(413, detail))
    return None


def _parse(body: bytes, kind: Kind) -> list[dict[str, Any]]:
    """The notifications in the body, each checked; InvalidPayloadError naming every bad field."""
    try:
        raw = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidPayloadError.for_field("body", f"not valid JSON: {type(exc).__name__}") from None
    value = raw.get("value") if isinstance(raw, dict) else None
    if not isinstance(value, list) or not value:
        raise InvalidPayloadError.for_field("value", "expected a non-empty list of notifications")
    problems: list[FieldError] = []
    for index, item in enumerate(value):
        where = f"value[{index}]"
        if not isinstance(item, dict):
            problems.append(FieldError(field=where, message="expected an object"))
            continue
        required = ["subscriptionId"] + (
            ["lifecycleEvent"] if kind == "lifecycle" else ["changeType", "resource"]
        )
        for name in required:
            if not _text(item.get(name)):
                problems.append(FieldError(field=f"{where}.{name}", message="expected a non-empty string"))
        for name in ("clientState", "tenantId", "resource"):
            if name in item and item[name] is not None and not isinstance(item[name], str):
                problems.append(FieldError(field=f"{where}.{name}", message="expected a string"))
        if kind == "change" and _text(item.get("changeType")):
            unknown = set(str(item["changeType"]).split(",")) - _CHANGE_TYPES
            if unknown:
                problems.append(FieldError(field=f"{where}.changeType", message=f"unknown {sorted(unknown)}"))
        if (
            kind == "lifecycle"
            and _text(item.get("lifecycleEvent"))
            and item["lifecycleEvent"] not in LIFECYCLE_EVENTS
        ):
            problems.append(
                FieldError(
                    field=f"{where}.lifecycleEvent", message=f"expected one of {sorted(LIFECYCLE_EVENTS)}"
                )
            )
    if problems:
        raise InvalidPayloadError(
            f"invalid {kind} notifications: {problems[0]['field']}: {problems[0]['message']}", errors=problems
        )
    return [dict(item) for item in value]


def _text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_TEXT


def _state_matches(received: object, expected: str | None) -> bool:
    if expected is None or not isinstance(received, str):
        return False
    return hmac.compare_digest(received.encode(), expected.encode())


def _envelope(items: list[dict[str, Any]], kind: Kind) -> Envelope:
    if kind == "lifecycle":
        keys = ("subscriptionId", "lifecycleEvent", "resource")
    else:
        keys = ("subscriptionId", "resource", "changeType")
    entries = sorted({tuple(str(item.get(k) or "") for k in keys) for item in items})
    payload: dict[str, Any] = {"entries": [dict(zip(keys, entry, strict=True)) for entry in entries]}
    digest = hashlib.sha256(json.dumps([kind, entries]).encode()).hexdigest()
    return Envelope(
        type=LIFECYCLE_TYPE if kind == "lifecycle" else CHANGE_TYPE, payload=payload, id=f"graph-{digest}"
    )


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")
