"""What each receiver accepts: one function per kind returning the list of problems (empty: valid).

The PagerDuty messages follow the shape of the Events API v2's documented ``errors`` (e.g. "Length of
'routing_key' is incorrect (should be 32 characters)").
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "ADAPTIVE_CARD",
    "DEDUP_KEY_LIMIT",
    "EVENT_ACTIONS",
    "ROUTING_KEY_LENGTH",
    "SEVERITIES",
    "SUMMARY_LIMIT",
    "pagerduty_errors",
    "slack_errors",
    "teams_errors",
]

ROUTING_KEY_LENGTH: Final = 32
SUMMARY_LIMIT: Final = 1024
DEDUP_KEY_LIMIT: Final = 255
EVENT_ACTIONS: Final = ("trigger", "acknowledge", "resolve")
SEVERITIES: Final = ("critical", "error", "warning", "info")
ADAPTIVE_CARD: Final = "application/vnd.microsoft.card.adaptive"


def _text(value: object) -> str | None:
    """The value when it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def pagerduty_errors(body: Any) -> list[str]:
    """Problems with an Events API v2 event (``POST /v2/enqueue``)."""
    if not isinstance(body, dict):
        return ["Event object is not a JSON object"]
    errors: list[str] = []
    routing_key = _text(body.get("routing_key"))
    if routing_key is None:
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    action = body.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(EVENT_ACTIONS)})")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > DEDUP_KEY_LIMIT:
        errors.append(f"Length of 'dedup_key' is incorrect (should be at most {DEDUP_KEY_LIMIT} characters)")
    if action in ("acknowledge", "resolve") and _text(dedup_key) is None:
        errors.append(f"'dedup_key' is missing or blank (required to {action})")
    if action == "trigger":
        errors.extend(_payload_errors(body.get("payload")))
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object (required to trigger)"]
    errors: list[str] = []
    summary = _text(payload.get("summary"))
    if summary is None:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > SUMMARY_LIMIT:
        errors.append(
            f"Length of 'payload.summary' is incorrect (should be at most {SUMMARY_LIMIT} characters)"
        )
    if _text(payload.get("source")) is None:
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
    return errors


def teams_errors(body: Any) -> list[str]:
    """Problems with a Workflows webhook message carrying Adaptive Cards."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    errors: list[str] = []
    if body.get("type") != "message":
        errors.append("'type' must be \"message\"")
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        errors.append("'attachments' must be a non-empty array")
        return errors
    for index, attachment in enumerate(attachments):
        where = f"attachments[{index}]"
        if not isinstance(attachment, dict):
            errors.append(f"'{where}' must be an object")
            continue
        if attachment.get("contentType") != ADAPTIVE_CARD:
            errors.append(f"'{where}.contentType' must be \"{ADAPTIVE_CARD}\"")
        content = attachment.get("content")
        if not isinstance(content, dict):
            errors.append(f"'{where}.content' must be an object")
            continue
        if content.get("type") != "AdaptiveCard":
            errors.append(f"'{where}.content.type' must be \"AdaptiveCard\"")
        card_body = content.get("body")
        if card_body is not None and not (
            isinstance(card_body, list) and all(isinstance(e, dict) and "type" in e for e in card_body)
        ):
            errors.append(f"'{where}.content.body' must be an array of elements with a 'type'")
    return errors


def slack_errors(body: Any) -> list[str]:
    """Problems with an incoming-webhook message: it needs ``text`` or ``blocks``."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    text, blocks = body.get("text"), body.get("blocks")
    errors: list[str] = []
    if text is not None and not isinstance(text, str):
        errors.append("'text' must be a string")
    if blocks is not None and not (
        isinstance(blocks, list) and all(isinstance(b, dict) and "type" in b for b in blocks)
    ):
        errors.append("'blocks' must be an array of blocks with a 'type'")
    if _text(text) is None and not (isinstance(blocks, list) and blocks):
        errors.append("'text' or 'blocks' is required")
    return errors
