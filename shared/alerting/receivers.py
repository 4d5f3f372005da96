"""Receivers: one group notification to PagerDuty, Teams, Slack, a signed webhook or e-mail.

- **PagerDuty** Events API v2: ``trigger`` while anything fires, ``resolve`` when all is resolved, with
  the group id as the stable ``dedup_key`` (one incident per group); severity mapped to
  critical / error / warning / info; ``summary`` at most 1,024 characters; the alerts in
  ``custom_details``. Answered 202.
- **Teams** (Workflows webhook): a message with an Adaptive Card (title coloured by status, the group
  labels as facts, one line per alert).
- **Slack** (incoming webhook): ``text`` plus Block Kit header and sections.
- **Webhook**: the notification as JSON, signed with Standard Webhooks (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>``) when a secret is set.
- **E-mail**: Graph ``sendMail`` from the receiver's mailbox.

A 429, a 5xx or a connection failure raises ``RetryableError`` (the flush message comes back); any
other 4xx raises ``PermanentError`` naming the receiver and the status (a misconfigured receiver).
URLs and keys never appear in errors or logs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from shared.alerting.router import Notification
from shared.config import Receiver
from shared.errors import PermanentError, RetryableError
from shared.tls import httpx_tls

__all__ = [
    "PAGERDUTY_SEVERITY",
    "Delivery",
    "adaptive_card",
    "pagerduty_event",
    "slack_message",
    "webhook_body",
]

PAGERDUTY_SEVERITY: Final = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
    "info": "info",
}
SUMMARY_LIMIT: Final = 1024
_SHOWN_ALERTS: Final = 10
_TIMEOUT: Final = httpx.Timeout(10.0)

SendMail = Callable[[str, list[str], str, str], Awaitable[None]]


def _lines(notification: Notification) -> list[str]:
    shown = notification.alerts[:_SHOWN_ALERTS]
    lines = [f"[{a['status']}] {a['severity']}: {a['summary']}" for a in shown]
    if len(notification.alerts) > _SHOWN_ALERTS:
        lines.append(f"... and {len(notification.alerts) - _SHOWN_ALERTS} more")
    return lines


def pagerduty_event(notification: Notification, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for ``notification``."""
    first = (notification.firing or notification.alerts)[0]
    summary = f"{notification.title}: {first['summary']}"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if notification.status == "firing" else "resolve",
        "dedup_key": notification.group_id,
        "client": "WaveGuard",
    }
    if notification.status == "firing":
        event["payload"] = {
            "summary": summary[:SUMMARY_LIMIT],
            "source": "waveguard",
            "severity": PAGERDUTY_SEVERITY.get(notification.severity, "info"),
            "class": notification.group_labels.get("alertname") or first["labels"].get("alertname"),
            "group": ",".join(f"{k}={v}" for k, v in notification.group_labels.items()),
            "custom_details": {
                "groupLabels": dict(notification.group_labels),
                "firing": len(notification.firing),
                "digestOf": notification.digest_of,
                "groups": list(notification.digest_groups)[:50],
                "alerts": notification.alerts[:50],
            },
        }
    return event


def adaptive_card(notification: Notification) -> dict[str, Any]:
    """A Teams Workflows message carrying an Adaptive Card."""
    colour = "Attention" if notification.status == "firing" else "Good"
    facts = [{"title": k, "value": v} for k, v in notification.group_labels.items() if v]
    lines = [
        {"type": "TextBlock", "text": line, "wrap": True, "spacing": "Small"} for line in _lines(notification)
    ]
    title = {"type": "TextBlock", "text": notification.title, "weight": "Bolder", "size": "Medium"}
    body: list[dict[str, Any]] = [
        {**title, "color": colour, "wrap": True},
        {"type": "FactSet", "facts": facts},
        *lines,
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def slack_message(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message with Block Kit blocks."""
    labels = ", ".join(f"*{k}*: {v}" for k, v in notification.group_labels.items() if v)
    return {
        "text": notification.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": notification.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": labels or "-"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(_lines(notification))[:3000]}},
        ],
    }


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The generic webhook's JSON: the whole group."""
    return {
        "version": "1",
        "groupId": notification.group_id,
        "receiver": notification.receiver.name,
        "status": notification.status,
        "title": notification.title,
        "groupLabels": dict(notification.group_labels),
        "digestOf": notification.digest_of,
        "groups": list(notification.digest_groups),
        "alerts": notification.alerts,
    }


def _webhook_key(secret: str) -> bytes:
    # A Standard Webhooks secret (whsec_<base64>) signs with its decoded bytes; any other text as is.
    from shared.hr.signatures import decode_whsec

    return decode_whsec(secret) if secret.startswith("whsec_") else secret.encode()


class Delivery:
    """Delivers notifications over HTTP (and Graph for e-mail); one instance per process."""

    def __init__(
        self, *, send_mail: SendMail | None = None, transport: httpx.AsyncBaseTransport | None = None
    ):
        self._send_mail = send_mail
        self._transport = transport

    async def __call__(self, notification: Notification) -> None:
        receiver = notification.receiver
        if receiver.pagerduty is not None:
            key = receiver.pagerduty.routing_key.get_secret_value()
            await self._post(receiver, str(receiver.pagerduty.url), pagerduty_event(notification, key))
        elif receiver.teams is not None:
            await self._post(
                receiver, receiver.teams.webhook_url.get_secret_value(), adaptive_card(notification)
            )
        elif receiver.slack is not None:
            await self._post(
                receiver, receiver.slack.webhook_url.get_secret_value(), slack_message(notification)
            )
        elif receiver.webhook is not None:
            body = json.dumps(webhook_body(notification)).encode()
            headers = {"content-type": "application/json"}
            if receiver.webhook.secret is not None:
                from shared.hr.signatures import sign_standard_webhook

                message_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
                signing_key = _webhook_key(receiver.webhook.secret.get_secret_value())
                headers.update(
                    {
                        "webhook-id": message_id,
                        "webhook-timestamp": str(timestamp),
                        "webhook-signature": sign_standard_webhook(signing_key, message_id, timestamp, body),
                    }
                )
            await self._post(receiver, str(receiver.webhook.url), None, content=body, headers=headers)
        elif receiver.email is not None:
            if self._send_mail is None:
                raise PermanentError(f"receiver {receiver.name}: e-mail needs Graph, which is not wired here")
            text = "\n".join([notification.title, "", *_lines(notification)])
            await self._send_mail(
                receiver.email.sender_mailbox, list(receiver.email.to), notification.title, text
            )

    async def _post(
        self,
        receiver: Receiver,
        url: str,
        payload: dict[str, Any] | None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            async with httpx.AsyncClient(
                timeout=_TIMEOUT, transport=self._transport, verify=httpx_tls()
            ) as client:
                if payload is not None:
                    response = await client.post(url, json=payload, headers=headers)
                else:
                    response = await client.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableError(
                f"receiver {receiver.name} ({receiver.kind}) could not be reached: {type(exc).__name__}"
            ) from None
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise RetryableError(
                f"receiver {receiver.name} ({receiver.kind}) answered {status}", retry_after=retry_after
            )
        if status >= 400:
            raise PermanentError(
                f"receiver {receiver.name} ({receiver.kind}) refused the notification with {status}; "
                "check its URL and key in the plan's alerting.receivers",
                receiver=receiver.name,
            )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
