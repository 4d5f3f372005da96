"""POST /users/{id or UPN}/sendMail into an outbox that tests read at /_emulator/outbox.

Validation follows what Exchange Online answers through Graph: a sender without a mailbox is 404
``ErrorInvalidUser`` (unknown) or ``MailboxNotEnabledForRESTAPI`` (no ``mail``); a message without
recipients or with an unresolvable address is 400 ``ErrorInvalidRecipients``; a body type other
than Text/HTML is 400 ``RequestBodyRead``. Success is 202 with an empty body.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import GraphError, JsonObject
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import register_extension

routes = RouteTable()
admin_routes = RouteTable()

ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RECIPIENT_FIELDS = ("toRecipients", "ccRecipients", "bccRecipients", "replyTo")
MESSAGE_FIELDS = frozenset(
    {
        *RECIPIENT_FIELDS,
        "subject",
        "body",
        "importance",
        "from",
        "sender",
        "attachments",
        "internetMessageHeaders",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "@odata.type",
    }
)
BODY_TYPES = {"text": "Text", "html": "HTML"}
NO_RECIPIENTS = (
    "At least one recipient is not valid., A message can't be sent because it contains no recipients."
)


@dataclass
class Outbox:
    """Every message sent in the tenant, oldest first."""

    messages: list[JsonObject] = field(default_factory=list)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.messages)

    def to_json(self) -> JsonObject:
        return {"messages": self.messages}

    @classmethod
    def from_json(cls, data: JsonObject) -> Outbox:
        return cls(messages=list(data.get("messages", [])))


register_extension("outbox", Outbox.from_json)


def outbox(call: Call) -> Outbox:
    return call.store.extension("outbox", Outbox)


@routes.post("/users/{user_id}/sendMail")
def send_mail(call: Call) -> Response:
    sender = require_mailbox(call, call.params["user_id"])
    # action parameters are matched case-insensitively: msgraph-sdk sends "Message", "SaveToSentItems"
    body = {name.casefold(): value for name, value in call.request.json_object().items()}
    save = parse_save_to_sent_items(body.get("savetosentitems"))
    message = body.get("message")
    if not isinstance(message, dict):
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
    parsed = parse_message(message, require_recipients=True)
    deliver(call, sender, parsed, save=save)
    return Response(status=202)


def parse_message(message: JsonObject, *, require_recipients: bool) -> JsonObject:
    """The message fields as the outbox keeps them (validated as Exchange does)."""
    unknown = set(message) - MESSAGE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise GraphError(
            400,
            "RequestBodyRead",
            f"The property '{name}' does not exist on type 'microsoft.graph.message'. Make sure to only "
            "use property names that are defined by the type or mark the type as open type.",
        )
    recipients = {name: parse_recipients(message.get(name), name) for name in RECIPIENT_FIELDS}
    if require_recipients and not (
        recipients["toRecipients"] or recipients["ccRecipients"] or recipients["bccRecipients"]
    ):
        raise GraphError(400, "ErrorInvalidRecipients", NO_RECIPIENTS)
    subject = message.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise conversion_error(subject, "Edm.String")
    content, content_type = parse_body(message.get("body"))
    headers = message.get("internetMessageHeaders") or []
    return {
        "to": recipients["toRecipients"],
        "cc": recipients["ccRecipients"],
        "bcc": recipients["bccRecipients"],
        "replyTo": recipients["replyTo"],
        "subject": subject or "",
        "body": content,
        "contentType": content_type,
        "importance": message.get("importance") or "normal",
        "internetMessageHeaders": [h for h in headers if isinstance(h, dict)],
    }


def deliver(
    call: Call, sender: JsonObject, parsed: JsonObject, *, save: bool, message_id: str | None = None
) -> None:
    """Put a sent message in the outbox (what tests read as delivered mail)."""
    outbox(call).messages.append(
        {
            "id": message_id or str(uuid.uuid4()),
            "internetMessageId": f"<{uuid.uuid4().hex}@{sender['mail'].split('@')[1]}>",
            "senderId": sender["id"],
            "from": sender["mail"],
            **{k: v for k, v in parsed.items() if k != "internetMessageHeaders"},
            "saveToSentItems": save,
            "sentDateTime": iso_utc(call.emulator.clock.now()),
        }
    )


def require_mailbox(call: Call, key: str) -> JsonObject:
    """The sending user, who must exist and have a mailbox (``mail`` set)."""
    user = call.store.find_user(key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if not user.get("mail"):
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return user


def parse_save_to_sent_items(raw: Any) -> bool:
    """Graph accepts a boolean or its string form; absent means true."""
    if raw is None:
        return True
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise conversion_error(raw, "Edm.Boolean")


def parse_recipients(raw: Any, name: str) -> list[JsonObject]:
    """``[{"emailAddress": {"address", "name"?}}]`` as ``[{"address", "name"}]``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GraphError(
            400,
            "RequestBodyRead",
            f"The property '{name}' must be a collection of microsoft.graph.recipient.",
        )
    parsed: list[JsonObject] = []
    for item in raw:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        if not isinstance(email, dict):
            email = {}
        address = email.get("address")
        if not isinstance(address, str) or not ADDRESS.match(address.strip()):
            shown = address if isinstance(address, str) else ""
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient is not valid., Recipient '{shown}' is not resolved. All recipients "
                "must be resolved before a message can be submitted.",
            )
        parsed.append({"address": address.strip(), "name": email.get("name")})
    return parsed


def parse_body(raw: Any) -> tuple[str, str]:
    """The body's content and its type (Text by default, as on Graph)."""
    if raw is None:
        return "", "Text"
    if not isinstance(raw, dict):
        raise GraphError(400, "RequestBodyRead", "The property 'body' must be a microsoft.graph.itemBody.")
    kind = raw.get("contentType", "Text")
    if not isinstance(kind, str) or kind.lower() not in BODY_TYPES:
        raise GraphError(400, "RequestBodyRead", f"Requested value '{kind}' was not found.")
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        raise conversion_error(content, "Edm.String")
    return content or "", BODY_TYPES[kind.lower()]


def conversion_error(value: Any, edm_type: str) -> GraphError:
    return GraphError(
        400, "RequestBodyRead", f"Cannot convert the literal '{value}' to the expected type '{edm_type}'."
    )


@admin_routes.get("/outbox")
def list_outbox(call: Call) -> Response:
    """Every sent message, oldest first; ``?to=`` or ``?from=`` narrows by address, ``?skip=N``
    leaves out the first N of those (a reader that polls asks only for what is new). ``count``
    counts every match, the skipped included."""
    to, sender = call.request.query_value("to"), call.request.query_value("from")
    skip_text = call.request.query_value("skip") or "0"
    if not (skip_text.isascii() and skip_text.isdigit()):
        raise GraphError(400, "BadRequest", f"skip must be a whole number, not {skip_text!r}.")
    messages = [
        m
        for m in outbox(call).messages
        if (to is None or any(r["address"].casefold() == to.casefold() for r in m["to"] + m["cc"] + m["bcc"]))
        and (sender is None or m["from"].casefold() == sender.casefold())
    ]
    return Response.json({"count": len(messages), "value": messages[int(skip_text) :]})


@admin_routes.delete("/outbox")
def clear_outbox(call: Call) -> Response:
    outbox(call).messages.clear()
    return Response.no_content()
