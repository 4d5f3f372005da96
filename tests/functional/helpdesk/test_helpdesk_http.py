"""POST /api/helpdesk/tickets and /api/helpdesk/jira via the real mini-host and Azurite: signed
tickets kept once in the state table, updates applied, bad input refused naming the field."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from shared.config import load_settings
from shared.helpdesk.jira import sign_jira
from shared.helpdesk.sender import send_ticket, signed_ticket_request
from shared.helpdesk.store import tickets_namespace
from shared.state import StateStores, build_state
from tests.app_host import app_host
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional

SECRET = "whsec_ZnVuY3Rpb25hbC1oZWxwZGVzay1zZWNyZXQ="
JIRA_SECRET = "functional-jira-secret"
CREATED = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def environ(storage_connection_string: str, emulator_server: EmulatorHandle) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": storage_connection_string,
        "GRAPH_BASE_URL": emulator_server.base_url,
        **PLAN_SECRETS,
        "WAVEGUARD_HELPDESK_WEBHOOK_SECRET": SECRET,
        "WAVEGUARD_JIRA_WEBHOOK_SECRET": JIRA_SECRET,
    }


@pytest.fixture(scope="module")
def api(environ: dict[str, str], storage_connection_string: str) -> Iterator[str]:
    with app_host(environ, storage_connection_string) as host:
        yield f"{host.base_url}/api"


@pytest.fixture(scope="module")
def stores(environ: dict[str, str]) -> StateStores:
    return build_state(load_settings(environ))


def _ticket(**extra: Any) -> dict[str, Any]:
    return {
        "id": f"INC-{uuid.uuid4().hex[:8]}",
        "requesterUserPrincipalName": "ada@contoso.com",
        "category": "MFA",
        "state": "open",
        "createdAt": CREATED.isoformat(),
        **extra,
    }


def _kept(stores: StateStores, key: str) -> Any:
    stored = stores.kv.get(tickets_namespace(CREATED.date()), key)
    return None if stored is None else stored.value


def test_a_signed_ticket_is_kept_once_and_closing_it_updates_it(api: str, stores: StateStores) -> None:
    ticket = _ticket()
    assert send_ticket(api, SECRET, ticket) == {"id": ticket["id"], "mfaRelated": True, "outcome": "stored"}
    assert send_ticket(api, SECRET, ticket)["outcome"] == "unchanged"
    closed = {**ticket, "state": "closed", "closedAt": CREATED.isoformat(), "updatedAt": CREATED.isoformat()}
    later = {**closed, "updatedAt": datetime.now(UTC).isoformat()}
    assert send_ticket(api, SECRET, later)["outcome"] == "updated"
    kept = _kept(stores, f"standard-webhooks:{ticket['id']}")
    assert (kept["state"], kept["mfaRelated"], kept["requesterUserPrincipalName"]) == (
        "closed",
        True,
        "ada@contoso.com",
    )


def test_bad_or_unsigned_tickets_are_refused_and_nothing_is_kept(api: str, stores: StateStores) -> None:
    ticket = _ticket(requesterUserPrincipalName="not a upn", tags="mfa")
    body, headers = signed_ticket_request(SECRET, ticket)
    answer = httpx.post(f"{api}/helpdesk/tickets", content=body, headers=headers, timeout=30)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == ["requesterUserPrincipalName", "tags"]
    forged, _ = signed_ticket_request(SECRET, _ticket())
    answer = httpx.post(f"{api}/helpdesk/tickets", content=forged, headers=headers, timeout=30)
    assert answer.status_code == 401
    assert _kept(stores, f"standard-webhooks:{ticket['id']}") is None


def test_a_jira_issue_event_is_kept_under_the_issue_id(api: str, stores: StateStores) -> None:
    issue_id = str(uuid.uuid4().int % 10**8)
    stamp = CREATED.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    payload = {
        "timestamp": int(CREATED.timestamp() * 1000),
        "webhookEvent": "jira:issue_created",
        "issue": {
            "id": issue_id,
            "key": "HD-7",
            "fields": {
                "created": stamp,
                "updated": stamp,
                "reporter": {"emailAddress": "grace@contoso.com"},
                "issuetype": {"name": "Service Request"},
                "labels": ["authenticator"],
                "status": {"statusCategory": {"key": "new"}},
            },
        },
    }
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "x-hub-signature": sign_jira(JIRA_SECRET, body)}
    answer = httpx.post(f"{api}/helpdesk/jira", content=body, headers=headers, timeout=30)
    assert (answer.status_code, answer.json()["outcome"]) == (202, "stored")
    assert _kept(stores, f"jira:{issue_id}")["tags"] == ["authenticator"]
