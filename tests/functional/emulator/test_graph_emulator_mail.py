"""sendMail: Graph's 202, Exchange's validation errors, and the outbox tests read back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from local.graph_emulator import SERVICE_MAILBOX_UPN, EmulatorHandle

pytestmark = pytest.mark.functional


def mail(to: str = "femke.ritchie@contoso.com", **message: Any) -> dict[str, Any]:
    return {
        "message": {
            "subject": "Your new starter's Temporary Access Pass",
            "body": {"contentType": "HTML", "content": "<p>Hello</p>"},
            "toRecipients": [{"emailAddress": {"address": to, "name": "Femke"}}],
            **message,
        },
        "saveToSentItems": "false",
    }


async def test_the_sdk_sends_from_the_service_mailbox_and_the_outbox_shows_it(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN the demo's service mailbox
    body = SendMailPostRequestBody(
        message=Message(
            subject="Welcome",
            body=ItemBody(content_type=BodyType.Text, content="Your pass: abc"),
            to_recipients=[Recipient(email_address=EmailAddress(address="femke.ritchie@contoso.com"))],
            cc_recipients=[Recipient(email_address=EmailAddress(address="it@contoso.com"))],
        ),
        save_to_sent_items=True,
    )

    # WHEN msgraph-sdk sends a message from it
    await graph.users.by_user_id(SERVICE_MAILBOX_UPN).send_mail.post(body)

    # THEN the outbox holds exactly that message
    outbox = (await http.get(f"{emulator.admin_url}/outbox")).json()
    assert outbox["count"] == 1
    [sent] = outbox["value"]
    assert sent["from"] == SERVICE_MAILBOX_UPN
    assert [r["address"] for r in sent["to"]] == ["femke.ritchie@contoso.com"]
    assert [r["address"] for r in sent["cc"]] == ["it@contoso.com"]
    assert (sent["subject"], sent["body"], sent["contentType"]) == ("Welcome", "Your pass: abc", "Text")
    assert sent["saveToSentItems"] is True
    assert sent["internetMessageId"].endswith("@contoso.com>")
    assert sent["sentDateTime"].endswith("Z")


async def test_send_answers_202_with_no_body_and_the_outbox_filters_and_clears(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    first = await http.post(f"{emulator.base_url}/users/{SERVICE_MAILBOX_UPN}/sendMail", json=mail())
    await http.post(
        f"{emulator.base_url}/users/{SERVICE_MAILBOX_UPN}/sendMail", json=mail(to="x@fabrikam.com")
    )

    assert first.status_code == 202
    assert first.content == b""
    only = (await http.get(f"{emulator.admin_url}/outbox", params={"to": "X@fabrikam.com"})).json()
    assert only["count"] == 1
    assert only["value"][0]["saveToSentItems"] is False
    assert (await http.delete(f"{emulator.admin_url}/outbox")).status_code == 204
    assert (await http.get(f"{emulator.admin_url}/outbox")).json()["count"] == 0


@pytest.mark.parametrize(
    ("sender", "body", "status", "code"),
    [
        ("nobody@contoso.com", mail(), 404, "ErrorInvalidUser"),
        ("bg-admin1@contoso.onmicrosoft.com", mail(), 404, "MailboxNotEnabledForRESTAPI"),
        (SERVICE_MAILBOX_UPN, mail(toRecipients=[]), 400, "ErrorInvalidRecipients"),
        (
            SERVICE_MAILBOX_UPN,
            mail(toRecipients=[{"emailAddress": {"name": "x"}}]),
            400,
            "ErrorInvalidRecipients",
        ),
        (SERVICE_MAILBOX_UPN, mail(to="not-an-address"), 400, "ErrorInvalidRecipients"),
        (SERVICE_MAILBOX_UPN, mail(body={"contentType": "Markdown", "content": "x"}), 400, "RequestBodyRead"),
        (SERVICE_MAILBOX_UPN, mail(subject=42), 400, "RequestBodyRead"),
        (
            SERVICE_MAILBOX_UPN,
            {"message": mail()["message"], "saveToSentItems": "maybe"},
            400,
            "RequestBodyRead",
        ),
        (SERVICE_MAILBOX_UPN, {"saveToSentItems": True}, 400, "ErrorInvalidParameter"),
    ],
)
async def test_bad_sends_get_exchanges_errors_and_send_nothing(
    emulator: EmulatorHandle,
    http: httpx.AsyncClient,
    sender: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await http.post(f"{emulator.base_url}/users/{sender}/sendMail", json=body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert (await http.get(f"{emulator.admin_url}/outbox")).json()["count"] == 0


async def test_the_sdk_sees_an_unknown_sender_as_an_odata_error(graph: GraphServiceClient) -> None:
    body = SendMailPostRequestBody(
        message=Message(to_recipients=[Recipient(email_address=EmailAddress(address="a@contoso.com"))])
    )

    with pytest.raises(ODataError) as raised:
        await graph.users.by_user_id("ghost@contoso.com").send_mail.post(body)

    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "ErrorInvalidUser"


async def test_the_outbox_skips_what_a_poller_has_read_and_refuses_a_skip_that_is_not_a_count(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN three messages sent to one manager and one to somebody else
    send = f"{emulator.base_url}/users/{SERVICE_MAILBOX_UPN}/sendMail"
    for n in range(3):
        assert (await http.post(send, json=mail(subject=f"m{n}"))).status_code == 202
    assert (await http.post(send, json=mail(to="it@contoso.com", subject="other"))).status_code == 202

    # WHEN a poller that has read two of the manager's asks for the rest
    manager = {"to": "femke.ritchie@contoso.com", "skip": 2}
    rest = await http.get(f"{emulator.admin_url}/outbox", params=manager)

    # THEN it gets only the third (count still counts all three); past the end is empty, not an error
    assert rest.status_code == 200
    assert [m["subject"] for m in rest.json()["value"]] == ["m2"]
    assert rest.json()["count"] == 3
    past = await http.get(f"{emulator.admin_url}/outbox", params={"skip": 9})
    assert past.json()["value"] == []

    # AND a skip that is not a whole number is a 400 naming it
    for bad in ("-1", "two", ""):
        refused = await http.get(f"{emulator.admin_url}/outbox", params={"skip": bad})
        if bad == "":
            assert refused.status_code == 200  # an empty skip is no skip
            continue
        assert refused.status_code == 400
        assert "skip" in refused.json()["error"]["message"]
