"""Drafts: ``POST /users/{id}/messages`` saves one, ``POST .../messages/{id}/send`` sends it (202; it
moves to Sent Items and keeps its id, which is immutable here as with ``Prefer: IdType="ImmutableId"``),
``GET .../messages/{id}`` reads it (``isDraft``), ``DELETE`` removes it. Missing: 404 ``ErrorItemNotFound``.
Sending a message that is no longer a draft is 400 ``ErrorInvalidOperation``, as Exchange answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import GraphError, JsonObject
from local.graph_emulator.odata import context_url
from local.graph_emulator.resources.mail import NO_RECIPIENTS, deliver, parse_message, require_mailbox
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import register_extension

routes = RouteTable()
NOT_FOUND = "The specified object was not found in the store."


@dataclass
class Mailboxes:
    """Messages saved in mailboxes, by id: drafts and the drafts sent from them."""

    messages: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        return len(self.messages)

    def to_json(self) -> JsonObject:
        return {"messages": self.messages}

    @classmethod
    def from_json(cls, data: JsonObject) -> Mailboxes:
        return cls(messages=dict(data.get("messages", {})))


register_extension("mailboxes", Mailboxes.from_json)


def _mailboxes(call: Call) -> Mailboxes:
    return call.store.extension("mailboxes", Mailboxes)


def _message(call: Call) -> tuple[JsonObject, JsonObject]:
    owner = require_mailbox(call, call.params["user_id"])
    found = _mailboxes(call).messages.get(call.params["message_id"])
    if found is None or found["ownerId"] != owner["id"]:
        raise GraphError(404, "ErrorItemNotFound", NOT_FOUND)
    return owner, found


def _view(call: Call, message: JsonObject) -> JsonObject:
    hidden = {"ownerId", "parsed"}
    return {
        "@odata.context": context_url(call.request, "users/messages/$entity"),
        **{k: v for k, v in message.items() if k not in hidden},
        **message["parsed"],
    }


@routes.post("/users/{user_id}/messages")
def create_draft(call: Call) -> Response:
    owner = require_mailbox(call, call.params["user_id"])
    parsed = parse_message(call.request.json_object(), require_recipients=False)
    message_id = str(uuid.uuid4())
    message = {
        "id": message_id,
        "ownerId": owner["id"],
        "isDraft": True,
        "createdDateTime": iso_utc(call.emulator.clock.now()),
        "parsed": parsed,
    }
    _mailboxes(call).messages[message_id] = message
    response = Response.json(_view(call, message), status=201)
    if "immutableid" in (call.request.header("Prefer") or "").replace(" ", "").lower():
        response.headers["Preference-Applied"] = 'IdType="ImmutableId"'
    return response


@routes.get("/users/{user_id}/messages/{message_id}")
def get_message(call: Call) -> Response:
    _, message = _message(call)
    return Response.json(_view(call, message))


@routes.post("/users/{user_id}/messages/{message_id}/send")
def send_draft(call: Call) -> Response:
    owner, message = _message(call)
    if not message["isDraft"]:
        raise GraphError(400, "ErrorInvalidOperation", "The item has already been sent.")
    recipients = message["parsed"]
    if not (recipients["to"] or recipients["cc"] or recipients["bcc"]):
        raise GraphError(400, "ErrorInvalidRecipients", NO_RECIPIENTS)
    message["isDraft"] = False
    message["sentDateTime"] = iso_utc(call.emulator.clock.now())
    deliver(call, owner, message["parsed"], save=True, message_id=message["id"])
    return Response(status=202)


@routes.delete("/users/{user_id}/messages/{message_id}")
def delete_message(call: Call) -> Response:
    _, message = _message(call)
    del _mailboxes(call).messages[message["id"]]
    return Response.no_content()
