"""Drafts: save, read (isDraft), send once (202, into the outbox, same id), and Graph's errors."""

from __future__ import annotations

import httpx
import pytest

from local.graph_emulator import SERVICE_MAILBOX_UPN, EmulatorHandle
from shared.config import load_settings
from shared.graph import build_graph_client
from shared.graph.mail import MailMessage, create_draft, message_state, send_draft
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional


async def test_a_draft_is_sent_once_and_keeps_its_id(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    client = build_graph_client(load_settings({"GRAPH_BASE_URL": emulator.base_url, **PLAN_SECRETS}))
    message = MailMessage(
        subject="Pass", body="Temporary Access Pass:  abc", to=("femke.ritchie@contoso.com",)
    )
    # WHEN the worker saves the e-mail as a draft (immutable ids requested)
    draft_id = await create_draft(client, SERVICE_MAILBOX_UPN, message, tag="env-1")
    # THEN it is a draft, and nothing is delivered yet
    assert await message_state(client, SERVICE_MAILBOX_UPN, draft_id) == "draft"
    assert (await http.get(f"{emulator.admin_url}/outbox")).json()["count"] == 0
    # WHEN it is sent / THEN it is delivered once and, under the same id, no longer a draft
    await send_draft(client, SERVICE_MAILBOX_UPN, draft_id)
    assert await message_state(client, SERVICE_MAILBOX_UPN, draft_id) == "sent"
    outbox = (await http.get(f"{emulator.admin_url}/outbox")).json()["value"]
    assert [(m["id"], m["body"]) for m in outbox] == [(draft_id, "Temporary Access Pass:  abc")]
    # AND sending it again is Exchange's 400, an unknown id a 404 (None)
    again = await http.post(f"{emulator.base_url}/users/{SERVICE_MAILBOX_UPN}/messages/{draft_id}/send")
    assert (again.status_code, again.json()["error"]["code"]) == (400, "ErrorInvalidOperation")
    assert await message_state(client, SERVICE_MAILBOX_UPN, "no-such-message") is None


async def test_the_immutable_id_preference_is_acknowledged(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    answer = await http.post(
        f"{emulator.base_url}/users/{SERVICE_MAILBOX_UPN}/messages",
        json={"subject": "x", "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}]},
        headers={"Prefer": 'IdType="ImmutableId"'},
    )
    assert answer.status_code == 201
    assert answer.headers["Preference-Applied"] == 'IdType="ImmutableId"'
    assert answer.json()["isDraft"] is True
