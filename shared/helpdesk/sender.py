"""Send one signed canonical ticket to ``POST /api/helpdesk/tickets``: what a service desk's
Standard Webhooks sender does, for the demo, tests and operators trying the endpoint."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from shared.hr.signatures import decode_whsec, sign_standard_webhook

__all__ = ["send_ticket", "signed_ticket_request"]


def signed_ticket_request(
    secret: str, ticket: dict[str, Any], *, webhook_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and Standard Webhooks headers of one delivery of ``ticket`` (canonical JSON)."""
    body = json.dumps(ticket, separators=(",", ":")).encode()
    delivery, stamp = webhook_id or f"msg_{uuid.uuid4().hex}", int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard_webhook(decode_whsec(secret), delivery, stamp, body),
    }
    return body, headers


def send_ticket(api_url: str, secret: str, ticket: dict[str, Any], *, timeout: float = 10) -> dict[str, Any]:
    """POST ``ticket`` to ``{api_url}/helpdesk/tickets`` signed with ``secret`` (``whsec_...``);
    the JSON answer (``{"id", "mfaRelated", "outcome"}`` on 202).

    Raises:
        httpx.HTTPStatusError: the endpoint refused the ticket (the problem JSON is in the response).
    """
    body, headers = signed_ticket_request(secret, ticket)
    response = httpx.post(
        f"{api_url.rstrip('/')}/helpdesk/tickets", content=body, headers=headers, timeout=timeout
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer
