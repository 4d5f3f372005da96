"""Send an e-mail from a mailbox through Graph ``POST /users/{sender}/sendMail``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.errors import PermanentError
from shared.graph.client import request_json
from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["MailMessage", "MessageState", "create_draft", "message_state", "send_draft", "send_mail"]

MessageState = Literal["draft", "sent"]
# Graph's header asking for ids that survive a move between folders (Drafts -> Sent Items).
IMMUTABLE_IDS: Final = {"Prefer": 'IdType="ImmutableId"'}
TAG_HEADER: Final = "x-waveguard-envelope"


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One e-mail; ``body`` may hold a secret (a TAP), so it is kept out of repr."""

    subject: str
    body: str = field(repr=False)
    to: Sequence[str]
    cc: Sequence[str] = ()
    content_type: Literal["text", "html"] = "text"


async def send_mail(
    client: GraphServiceClient, sender: str, message: MailMessage, *, save_to_sent_items: bool = False
) -> None:
    """Send ``message`` from ``sender``'s mailbox (Graph answers 202 once it accepted it).

    Raises:
        NotFoundError: the sender mailbox does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused it (e.g. no Mail.Send permission for the mailbox).
    """
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    def recipients(addresses: Sequence[str]) -> list[Recipient]:
        return [Recipient(email_address=EmailAddress(address=address)) for address in addresses]

    body_type = BodyType.Html if message.content_type == "html" else BodyType.Text
    request = SendMailPostRequestBody(
        message=Message(
            subject=message.subject,
            body=ItemBody(content_type=body_type, content=message.body),
            to_recipients=recipients(message.to),
            cc_recipients=recipients(message.cc),
        ),
        save_to_sent_items=save_to_sent_items,
    )
    try:
        await client.users.by_user_id(sender).send_mail.post(request)
    except Exception as exc:
        # from None: the chained exception could carry the request (and its body with a TAP).
        raise to_waveguard_error(exc, operation="send mail") from None


def _message_json(message: MailMessage, tag: str | None) -> dict[str, Any]:
    def recipients(addresses: Sequence[str]) -> list[dict[str, Any]]:
        return [{"emailAddress": {"address": address}} for address in addresses]

    body: dict[str, Any] = {
        "subject": message.subject,
        "body": {
            "contentType": "HTML" if message.content_type == "html" else "Text",
            "content": message.body,
        },
        "toRecipients": recipients(message.to),
        "ccRecipients": recipients(message.cc),
    }
    if tag:
        body["internetMessageHeaders"] = [{"name": TAG_HEADER, "value": tag}]
    return body


async def create_draft(
    client: GraphServiceClient, sender: str, message: MailMessage, *, tag: str | None
) -> str:
    """Save ``message`` as a draft in ``sender``'s mailbox; returns its immutable id (it keeps it
    when sending moves it to Sent Items).

    Raises:
        RetryableError / PermanentError: Graph failed or refused it (e.g. no Mail.ReadWrite).
    """
    answer = await request_json(
        client,
        "POST",
        f"/users/{sender}/messages",
        _message_json(message, tag),
        operation="create draft",
        headers=IMMUTABLE_IDS,
    )
    draft_id = (answer or {}).get("id")
    if not isinstance(draft_id, str) or not draft_id:
        raise PermanentError("Graph created a draft but returned no id", sender=sender)
    return draft_id


async def message_state(client: GraphServiceClient, sender: str, message_id: str) -> MessageState | None:
    """``draft`` (not sent yet), ``sent``, or None when the message no longer exists.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    found = await request_json(
        client,
        "GET",
        f"/users/{sender}/messages/{message_id}?$select=id,isDraft",
        operation="read message",
        headers=IMMUTABLE_IDS,
    )
    if found is None:
        return None
    return "draft" if found.get("isDraft") else "sent"


async def send_draft(client: GraphServiceClient, sender: str, message_id: str) -> None:
    """Send a saved draft (Graph answers 202 and moves it to Sent Items, same immutable id).

    Raises:
        NotFoundError: the draft is gone.
        RetryableError / PermanentError: Graph failed or refused it.
    """
    from shared.errors import NotFoundError

    answer = await request_json(
        client,
        "POST",
        f"/users/{sender}/messages/{message_id}/send",
        operation="send draft",
        headers=IMMUTABLE_IDS,
    )
    if answer is None:
        raise NotFoundError("the draft to send no longer exists", message_id=message_id)
