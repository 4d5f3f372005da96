"""Send an e-mail from a mailbox through Graph ``POST /users/{sender}/sendMail``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["MailMessage", "send_mail"]


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
