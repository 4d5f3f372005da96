"""The Jira (Service Management) adapter: admin webhooks for ``jira:issue_created``, ``_updated``
and ``_deleted`` mapped to the canonical ticket.

Authentication: a Jira admin webhook (Jira settings > System > WebHooks, or
``/rest/webhooks/1.0/webhook``) registered with a secret is signed by Jira with HMAC-SHA256 of the
raw body under that secret, sent as ``X-Hub-Signature: sha256=<hex>`` (WebSub's format). The body's
``timestamp`` (epoch ms, when Jira raised the event) is therefore signed too: a delivery whose
timestamp is further than ``helpdesk.jira.timestampToleranceSeconds`` (default a day: Jira retries
for hours) from our clock is refused, so a captured delivery cannot be replayed later; within it a
replay only re-asserts a state the store already has or has passed (``updatedAt`` orders them).

Mapping (under ``issue``): ``id`` → ``id`` (stable when the issue moves to another project and
its key changes); the first of ``helpdesk.jira.requesterFields`` (default
``fields.reporter.emailAddress``: in Service Management the reporter is the customer who raised the
request) → ``requesterUserPrincipalName``; the request type's name
(``fields.<requestTypeField>.requestType.name``) when configured, else ``fields.issuetype.name`` →
``category``; ``fields.labels`` and the names of ``fields.components`` → ``tags``;
``fields.status.statusCategory.key`` ``done`` → ``closed`` (else ``open``; the deleted event →
``deleted``); ``fields.created``, ``fields.updated`` (for a deletion the webhook's ``timestamp``),
``fields.resolutiondate`` → ``createdAt``, ``updatedAt``, ``closedAt``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.config.helpdesk import JiraServiceManagement
from shared.errors import FieldError, InvalidPayloadError
from shared.helpdesk.tickets import Ticket, parse_ticket
from shared.hr.signatures import SignatureError

__all__ = [
    "HEADER_SIGNATURE",
    "JIRA_EVENTS",
    "JiraDelivery",
    "check_jira_timestamp",
    "map_jira_payload",
    "sign_jira",
    "verify_jira",
]

HEADER_SIGNATURE: Final = "x-hub-signature"
ISSUE_CREATED: Final = "jira:issue_created"
ISSUE_UPDATED: Final = "jira:issue_updated"
ISSUE_DELETED: Final = "jira:issue_deleted"
JIRA_EVENTS: Final = frozenset({ISSUE_CREATED, ISSUE_UPDATED, ISSUE_DELETED})
_PREFIX: Final = "sha256="
_MAX_SIGNATURE: Final = 200


@dataclass(frozen=True, slots=True)
class JiraDelivery:
    """A mapped delivery: the ticket, or why the event carries none (another webhook event)."""

    ticket: Ticket | None
    event: str
    ignored: str | None = None


def sign_jira(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body`` (for tests and our own tools)."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_jira(headers: Mapping[str, str], body: bytes, *, secret: str) -> None:
    """Check ``X-Hub-Signature`` (``headers`` with lower-case names).

    Raises:
        SignatureError: the header is missing, malformed or does not match the secret.
    """
    offered = headers.get(HEADER_SIGNATURE, "").strip()
    if not offered:
        raise SignatureError("missing X-Hub-Signature header")
    if len(offered) > _MAX_SIGNATURE or not offered.startswith(_PREFIX):
        raise SignatureError("X-Hub-Signature must be sha256=<hex>")
    expected = sign_jira(secret, body)
    if not hmac.compare_digest(expected.encode(), offered.lower().encode()):
        raise SignatureError("X-Hub-Signature does not match the configured secret")


def check_jira_timestamp(obj: object, *, now: datetime, tolerance: timedelta) -> None:
    """Check the signed body's ``timestamp`` (epoch ms) is within ``tolerance`` of ``now``.

    Raises:
        SignatureError: the timestamp is missing, not epoch milliseconds, or too old or too new.
    """
    stamp = obj.get("timestamp") if isinstance(obj, dict) else None
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise SignatureError("the Jira delivery carries no timestamp (epoch milliseconds)")
    try:
        sent = datetime.fromtimestamp(stamp / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureError("the Jira delivery's timestamp is not epoch milliseconds") from None
    if abs(now - sent) > tolerance:
        raise SignatureError(
            f"the Jira delivery's timestamp ({sent.isoformat()}) is more than "
            f"{int(tolerance.total_seconds())} s from now: a stale or replayed delivery"
        )


# Canonical field -> where it came from in Jira's payload (errors name what the sender sent).
_SOURCES: Final = {
    "id": "issue.id",
    "category": "issue.fields.issuetype.name",
    "tags": "issue.fields.labels",
    "state": "issue.fields.status.statusCategory.key",
    "createdAt": "issue.fields.created",
    "updatedAt": "issue.fields.updated",
    "closedAt": "issue.fields.resolutiondate",
}


def map_jira_payload(obj: object, *, config: JiraServiceManagement) -> JiraDelivery:
    """The canonical ticket of one Jira webhook delivery.

    Raises:
        InvalidPayloadError: the delivery is not a Jira issue event we can read; ``errors`` name
            Jira's fields (``issue.fields.reporter.emailAddress``, ...).
    """
    if not isinstance(obj, dict):
        raise InvalidPayloadError.for_field("body", "expected a JSON object")
    event = obj.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise InvalidPayloadError.for_field("webhookEvent", "is required")
    if event not in JIRA_EVENTS:
        return JiraDelivery(None, event, ignored=f"{event} is not an issue created, updated or deleted event")
    issue = obj.get("issue")
    if not isinstance(issue, dict) or not isinstance(issue.get("fields"), dict):
        raise InvalidPayloadError.for_field("issue.fields", "is required")
    fields: dict[str, Any] = issue["fields"]
    requester_source = _first_string(fields, config.requester_fields)
    canonical: dict[str, Any] = {
        "id": issue.get("id"),
        "requesterUserPrincipalName": requester_source[1] if requester_source else None,
        "category": _category(fields, config),
        "tags": _tags(fields),
        "state": "deleted" if event == ISSUE_DELETED else _state(fields),
        "createdAt": fields.get("created"),
        "updatedAt": _updated(fields, obj.get("timestamp"), deleted=event == ISSUE_DELETED),
    }
    if canonical["state"] != "open" and fields.get("resolutiondate"):
        canonical["closedAt"] = fields["resolutiondate"]
    canonical = {k: v for k, v in canonical.items() if v is not None}
    requester_path = requester_source[0] if requester_source else config.requester_fields[0]
    try:
        return JiraDelivery(parse_ticket(canonical), event)
    except InvalidPayloadError as exc:
        sources = {**_SOURCES, "requesterUserPrincipalName": f"issue.fields.{requester_path}"}
        errors = [_renamed(e, sources) for e in exc.errors]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise InvalidPayloadError(f"invalid Jira issue event: {summary}", errors=errors) from None


def _renamed(error: FieldError, sources: dict[str, str]) -> FieldError:
    head, _, rest = error["field"].partition(".")
    source = sources.get(head, f"issue.{head}")
    return FieldError(field=f"{source}.{rest}" if rest else source, message=error["message"])


def _path(fields: dict[str, Any], path: str) -> object:
    value: object = fields
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _first_string(fields: dict[str, Any], paths: list[str]) -> tuple[str, str] | None:
    for path in paths:
        value = _path(fields, path)
        if isinstance(value, str) and value.strip():
            return path, value.strip()
    return None


def _category(fields: dict[str, Any], config: JiraServiceManagement) -> object:
    if config.request_type_field:
        name = _path(fields, f"{config.request_type_field}.requestType.name")
        if isinstance(name, str) and name:
            return name
    return _path(fields, "issuetype.name")


def _tags(fields: dict[str, Any]) -> object:
    labels = fields.get("labels") or []
    if not isinstance(labels, list):
        return labels  # refused by the parser, naming issue.fields.labels
    components = fields.get("components") or []
    names = [c.get("name") for c in components if isinstance(c, dict)] if isinstance(components, list) else []
    return [*labels, *(n for n in names if isinstance(n, str) and n)]


def _state(fields: dict[str, Any]) -> str:
    return "closed" if _path(fields, "status.statusCategory.key") == "done" else "open"


def _updated(fields: dict[str, Any], timestamp: object, *, deleted: bool) -> object:
    updated = fields.get("updated")
    if not deleted or isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return updated
    # A deletion changes no field: the webhook's own time (epoch ms) orders it after the last update.
    try:
        return datetime.fromtimestamp(timestamp / 1000, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return updated
