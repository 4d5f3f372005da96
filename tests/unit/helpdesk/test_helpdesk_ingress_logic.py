"""The helpdesk ingress without Functions: signature, validation, one conditional write, idempotence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import SecretStr

from shared.config.helpdesk import Helpdesk, HelpdeskStandardWebhooks, JiraServiceManagement
from shared.helpdesk.ingress import HelpdeskDeps, accept_jira_webhook, accept_ticket_webhook
from shared.helpdesk.jira import sign_jira
from shared.helpdesk.sender import signed_ticket_request
from shared.helpdesk.store import read_tickets, tickets_namespace
from shared.http_ingress import IncomingRequest
from shared.state import StateStores, build_memory_state

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JIRA_SECRET = "jira-admin-webhook-secret"
# Tickets of two days ago (createdAt is bounded by the receiver's real clock: at most 62 days old).
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=15, second=0, microsecond=0)
TICKET: dict[str, Any] = {
    "id": "INC-1042",
    "requesterUserPrincipalName": "Ada@Contoso.com",
    "category": "Identity",
    "tags": ["Sign In", "laptop"],
    "state": "open",
    "createdAt": DAY.isoformat(),
}


def _deps(stores: StateStores) -> HelpdeskDeps:
    config = Helpdesk(
        standard_webhooks=HelpdeskStandardWebhooks(secrets=[SecretStr(SECRET)]),
        jira=JiraServiceManagement(secret=SecretStr(JIRA_SECRET), request_type_field="customfield_10010"),
    )
    # The signature's timestamp is the real time of signing: the clock must be the real one too.
    return HelpdeskDeps(config=config, kv=stores.aio.kv, clock=lambda: datetime.now(UTC))


def _signed(ticket: dict[str, Any], secret: str = SECRET) -> IncomingRequest:
    body, headers = signed_ticket_request(secret, ticket)
    return IncomingRequest("POST", headers, body)


def _stored(stores: StateStores) -> list[dict[str, Any]]:
    return stores.kv.values(tickets_namespace(DAY.date()))


async def test_a_signed_mfa_ticket_is_kept_once_and_its_closing_updates_it() -> None:
    stores = build_memory_state()
    deps = _deps(stores)
    first = await accept_ticket_webhook(_signed(TICKET), deps=deps)
    assert (first.status, first.body) == (202, {"id": "INC-1042", "mfaRelated": True, "outcome": "stored"})
    # a redelivery (same state, new delivery id) is idempotent
    again = await accept_ticket_webhook(_signed(TICKET), deps=deps)
    assert again.body["outcome"] == "unchanged"
    next_day = (DAY + timedelta(days=1, minutes=45)).isoformat().replace("+00:00", "Z")
    closed = {**TICKET, "state": "closed", "closedAt": next_day, "updatedAt": next_day}
    assert (await accept_ticket_webhook(_signed(closed), deps=deps)).body["outcome"] == "updated"
    # a late retry of the older, open state changes nothing
    assert (await accept_ticket_webhook(_signed(TICKET), deps=deps)).body["outcome"] == "unchanged"
    [row] = _stored(stores)
    assert (row["state"], row["requesterUserPrincipalName"], row["closedAt"]) == (
        "closed",
        "ada@contoso.com",
        next_day,
    )
    since, until = DAY - timedelta(days=1), DAY + timedelta(days=2)
    [kept] = (await read_tickets(stores.aio.kv, since=since, until=until)).tickets
    assert (kept.id, kept.mfa_related, kept.state) == ("INC-1042", True, "closed")


async def test_a_ticket_about_something_else_is_not_kept() -> None:
    stores = build_memory_state()
    printer = {**TICKET, "category": "Printing", "tags": ["toner"]}
    answer = await accept_ticket_webhook(_signed(printer), deps=_deps(stores))
    assert answer.body == {"id": "INC-1042", "mfaRelated": False, "outcome": "ignored"}
    assert _stored(stores) == []


async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written() -> None:
    stores = build_memory_state()
    bad = {**TICKET, "requesterUserPrincipalName": "ada", "createdAt": "yesterday"}
    answer = await accept_ticket_webhook(_signed(bad), deps=_deps(stores))
    assert answer.status == 400
    assert answer.content_type == "application/problem+json"
    assert [e["field"] for e in answer.body["errors"]] == ["requesterUserPrincipalName", "createdAt"]
    forged = await accept_ticket_webhook(
        _signed(TICKET, "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="), deps=_deps(stores)
    )
    assert forged.status == 401
    request = _signed(TICKET)
    plain = IncomingRequest("POST", {**request.headers, "content-type": "text/plain"}, request.body)
    assert (await accept_ticket_webhook(plain, deps=_deps(stores))).status == 415
    assert _stored(stores) == []


async def test_an_unconfigured_source_answers_404() -> None:
    deps = HelpdeskDeps(config=Helpdesk(), kv=build_memory_state().aio.kv)
    assert (await accept_ticket_webhook(_signed(TICKET), deps=deps)).status == 404
    assert (await accept_jira_webhook(_signed(TICKET), deps=deps)).status == 404


def _jira_time(moment: datetime) -> str:
    """Jira's format, in UTC+1 as a Jira site in Paris sends it."""
    return moment.astimezone(timezone(timedelta(hours=1))).strftime("%Y-%m-%dT%H:%M:%S.000%z")


def _jira(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": int(datetime.now(UTC).timestamp() * 1000),
        "webhookEvent": event,
        "issue": {
            "id": "10002",
            "key": "HD-42",
            "fields": {
                "created": _jira_time(DAY),
                "updated": _jira_time(DAY),
                "resolutiondate": None,
                "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": "grace@contoso.com"},
                "issuetype": {"name": "Service Request"},
                "customfield_10010": {"requestType": {"name": "Authenticator app help"}},
                "labels": ["mfa"],
                "components": [{"name": "Identity"}],
                "status": {"name": "Waiting for support", "statusCategory": {"key": "indeterminate"}},
                **fields,
            },
        },
    }


def _jira_request(payload: dict[str, Any], secret: str = JIRA_SECRET) -> IncomingRequest:
    body = json.dumps(payload).encode()
    return IncomingRequest(
        "POST", {"Content-Type": "application/json", "X-Hub-Signature": sign_jira(secret, body)}, body
    )


async def test_jira_issue_events_map_to_the_canonical_ticket() -> None:
    stores = build_memory_state()
    deps = _deps(stores)
    created = await accept_jira_webhook(_jira_request(_jira("jira:issue_created")), deps=deps)
    assert (created.status, created.body) == (202, {"id": "10002", "mfaRelated": True, "outcome": "stored"})
    done = _jira(
        "jira:issue_updated",
        updated=_jira_time(DAY + timedelta(hours=5)),
        resolutiondate=_jira_time(DAY + timedelta(hours=5)),
        status={"name": "Resolved", "statusCategory": {"key": "done"}},
    )
    assert (await accept_jira_webhook(_jira_request(done), deps=deps)).body["outcome"] == "updated"
    [row] = _stored(stores)
    assert (row["source"], row["category"], row["tags"], row["state"], row["closedAt"]) == (
        "jira",
        "Authenticator app help",
        ["mfa", "Identity"],
        "closed",
        (DAY + timedelta(hours=5)).isoformat().replace("+00:00", "Z"),
    )
    # a comment event carries no ticket state: accepted, nothing written
    event = {"webhookEvent": "comment_created", "timestamp": int(datetime.now(UTC).timestamp() * 1000)}
    comment = await accept_jira_webhook(_jira_request(event), deps=deps)
    assert comment.body["outcome"] == "ignored"


async def test_jira_deliveries_are_refused_naming_jira_fields() -> None:
    stores = build_memory_state()
    deps = _deps(stores)
    unsigned = _jira_request(_jira("jira:issue_created"), secret="someone else")
    assert (await accept_jira_webhook(unsigned, deps=deps)).status == 401
    hidden = _jira("jira:issue_created", reporter={"accountId": "5b10ac8d82e05b22cc7d4ef5"}, created="soon")
    answer = await accept_jira_webhook(_jira_request(hidden), deps=deps)
    assert answer.status == 400
    assert [e["field"] for e in answer.body["errors"]] == [
        "issue.fields.reporter.emailAddress",
        "issue.fields.created",
    ]
    assert _stored(stores) == []
