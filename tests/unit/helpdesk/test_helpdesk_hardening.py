"""The helpdesk ingress and store under hostile or unusual input: the per-day read cap is reported,
never an undercount; createdAt is bounded and old days are deleted; store errors answer by kind;
Jira secrets and delivery times are checked; a new ticket costs one write and no read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

import shared.helpdesk.store as store
from shared.config.base import REQUIRE_SECRETS_FROM_ENV
from shared.config.helpdesk import Helpdesk, HelpdeskStandardWebhooks, JiraServiceManagement
from shared.config.interpolate import interpolate
from shared.config.waves import Gates
from shared.errors import InvalidPayloadError, PermanentError, RetryableError
from shared.helpdesk.ingress import HelpdeskDeps, accept_jira_webhook, accept_ticket_webhook
from shared.helpdesk.jira import sign_jira
from shared.helpdesk.sender import signed_ticket_request
from shared.helpdesk.store import (
    MAX_TICKET_WINDOW_DAYS,
    PRUNE_NAMESPACE,
    RETENTION,
    prune_tickets,
    read_tickets,
    record_ticket,
    tickets_namespace,
)
from shared.helpdesk.tickets import parse_ticket
from shared.http_ingress import IncomingRequest
from shared.rollout.lifecycle.gates import WaveEvidence, mfa_tickets_gate
from shared.state import AsyncKeyValuePort, Versioned, build_memory_state

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JIRA_SECRET = "jira-admin-webhook-secret"
NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def _ticket(ticket_id: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "requesterUserPrincipalName": "ada@contoso.com",
        "category": "MFA",
        "state": "open",
        "createdAt": created.isoformat(),
        **extra,
    }


class CountingKv:
    """The memory store, with the calls the ingress made (``get``, ``insert``, ``replace``...)."""

    def __init__(self, inner: AsyncKeyValuePort, *, fail: Exception | None = None) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.fail = fail

    async def get(self, namespace: str, key: str) -> Versioned | None:
        self.calls.append("get")
        return await self.inner.get(namespace, key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Versioned]:
        self.calls.append("get_many")
        return await self.inner.get_many(namespace, keys)

    async def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        self.calls.append("insert" if if_absent else "replace" if if_match else "put")
        if self.fail is not None:
            raise self.fail
        return await self.inner.put(namespace, key, value, if_match=if_match, if_absent=if_absent)

    async def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        self.calls.append("delete")
        await self.inner.delete(namespace, key, if_match=if_match)

    async def values(self, namespace: str, *, limit: int = 1000) -> list[Any]:
        self.calls.append("values")
        return await self.inner.values(namespace, limit=limit)

    async def items(
        self, namespace: str, *, start: str | None = None, stop: str | None = None, limit: int = 1000
    ) -> list[tuple[str, Any]]:
        self.calls.append("items")
        return await self.inner.items(namespace, start=start, stop=stop, limit=limit)


def _deps(kv: AsyncKeyValuePort) -> HelpdeskDeps:
    config = Helpdesk(
        standard_webhooks=HelpdeskStandardWebhooks(secrets=[SecretStr(SECRET)]),
        jira=JiraServiceManagement(secret=SecretStr(JIRA_SECRET)),
    )
    # The signature's timestamp is the real time of signing: the clock must be the real one too.
    return HelpdeskDeps(config=config, kv=kv, clock=lambda: datetime.now(UTC))


def _signed(ticket: dict[str, Any]) -> IncomingRequest:
    body, headers = signed_ticket_request(SECRET, ticket)
    return IncomingRequest("POST", headers, body)


# B1 ---------------------------------------------------------------------------------------------


async def test_a_day_beyond_the_read_cap_fails_the_gate_as_truncated_never_undercounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kv = build_memory_state().aio.kv
    monkeypatch.setattr(store, "MAX_TICKETS_PER_DAY", 3)
    for i in range(4):
        ticket = parse_ticket(
            {**_ticket(f"T{i}", NOW - timedelta(hours=1)), "requesterUserPrincipalName": f"u{i}@c.com"}
        )
        await record_ticket(kv, ticket, source="s", mfa_related=True, now=NOW)
    read = await read_tickets(kv, since=NOW - timedelta(days=2), until=NOW)
    assert (len(read.tickets), read.truncated) == (3, (NOW.date(),))
    gates = Gates(max_mfa_tickets_per_100_users=50, ticket_window_days=2)
    members = frozenset(f"u{i}" for i in range(10))
    addresses = {f"u{i}@c.com": f"u{i}" for i in range(10)}
    evidence = WaveEvidence(members, frozenset(), member_addresses=addresses, tickets=read)
    gate = mfa_tickets_gate(gates, evidence, now=NOW)
    assert gate is not None
    assert (gate.passed, gate.measured) == (False, None)
    assert gate.detail.startswith(f"evidence truncated: more than 3 kept tickets on {NOW.date().isoformat()}")


# B2 ---------------------------------------------------------------------------------------------


async def test_created_at_is_bounded_a_future_one_is_refused_naming_the_field_an_old_one_ignored() -> None:
    kv = CountingKv(build_memory_state().aio.kv)
    now = datetime.now(UTC)
    future = await accept_ticket_webhook(_signed(_ticket("F", now + timedelta(days=2))), deps=_deps(kv))
    assert future.status == 400
    assert [e["field"] for e in future.body["errors"]] == ["createdAt"]
    old = await accept_ticket_webhook(
        _signed(_ticket("O", now - RETENTION - timedelta(hours=1))), deps=_deps(kv)
    )
    assert (old.status, old.body["outcome"]) == (202, "ignored")
    assert "counts in no gate window" in old.body["detail"]
    assert kv.calls == []  # neither touched the store


def test_the_retention_covers_the_longest_ticket_window_a_plan_may_set() -> None:
    [limit] = [m.le for m in Gates.model_fields["ticket_window_days"].metadata if hasattr(m, "le")]
    assert limit == MAX_TICKET_WINDOW_DAYS
    assert timedelta(days=limit) < RETENTION


async def test_the_days_past_retention_are_deleted_in_bounded_steps_and_recent_ones_kept() -> None:
    kv = build_memory_state().aio.kv
    cutoff = NOW - RETENTION
    old_days = [cutoff - timedelta(days=d) for d in (1, 2, 5)]
    for n, created in enumerate(old_days):
        for i in range(3):
            ticket = parse_ticket(_ticket(f"OLD-{n}-{i}", created))
            # written when it was recent: the ingress would have kept it then
            await record_ticket(kv, ticket, source="s", mfa_related=True, now=created + timedelta(hours=1))
    recent = parse_ticket(_ticket("NEW", NOW - timedelta(days=1)))
    await record_ticket(kv, recent, source="s", mfa_related=True, now=NOW)
    # WHEN pruning with room for 4 rows a tick / THEN the oldest day first, never more than 4 rows
    assert await prune_tickets(kv, now=NOW, limit=4) == 4
    assert await prune_tickets(kv, now=NOW, limit=4) == 4
    assert await prune_tickets(kv, now=NOW, limit=4) == 1
    assert await prune_tickets(kv, now=NOW, limit=4) == 0
    for created in old_days:
        assert await kv.values(tickets_namespace(created.date())) == []
    assert [t.id for t in (await read_tickets(kv, since=NOW - timedelta(days=3), until=NOW)).tickets] == [
        "NEW"
    ]
    # AND a caught-up prune reads only its watermark
    counting = CountingKv(kv)
    assert await prune_tickets(counting, now=NOW) == 0
    assert counting.calls == ["get"]
    assert (await kv.get(PRUNE_NAMESPACE, "pruned")) is not None


# B5 ---------------------------------------------------------------------------------------------


async def test_a_ticket_too_large_to_store_is_refused_naming_tags_not_answered_503() -> None:
    kv = CountingKv(build_memory_state().aio.kv)
    big = _ticket("BIG", datetime.now(UTC), tags=["é" * 128] * 49 + ["mfa"])
    answer = await accept_ticket_webhook(_signed(big), deps=_deps(kv))
    assert answer.status == 400
    assert [e["field"] for e in answer.body["errors"]] == ["tags"]
    assert "Retry-After" not in answer.headers
    assert kv.calls == []


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (RetryableError("table busy"), 503, "30"),
        (InvalidPayloadError.for_field("value", "31000 characters; the limit is 30000"), 400, None),
        (PermanentError("table access denied"), 500, None),
    ],
)
async def test_store_errors_answer_by_their_kind(
    error: Exception, status: int, retry_after: str | None
) -> None:
    kv = CountingKv(build_memory_state().aio.kv, fail=error)
    answer = await accept_ticket_webhook(_signed(_ticket("E", datetime.now(UTC))), deps=_deps(kv))
    assert answer.status == status
    assert answer.headers.get("Retry-After") == retry_after
    if status == 400:
        assert [e["field"] for e in answer.body["errors"]] == ["body"]


# B6 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [" " * 20, "short-secret", "a b c d e f g h i j k l m n o"])
def test_a_jira_secret_needs_16_non_whitespace_characters(value: str) -> None:
    doc, problems = interpolate({"jira": {"secret": "${J}"}}, {"J": value})
    assert problems == []
    with pytest.raises(ValidationError) as caught:
        Helpdesk.model_validate(doc, context={REQUIRE_SECRETS_FROM_ENV: True})
    [error] = caught.value.errors(include_url=False, include_input=False)  # as the loader reports it
    assert (error["loc"], error["msg"]) == (
        ("jira", "secret"),
        "expected at least 16 non-whitespace characters",
    )


def test_a_jira_secret_of_16_characters_and_an_unset_one_are_accepted() -> None:
    doc, _ = interpolate({"jira": {"secret": "${J}"}}, {"J": "0123456789abcdef"})
    assert Helpdesk.model_validate(doc, context={REQUIRE_SECRETS_FROM_ENV: True}).jira.enabled
    doc, _ = interpolate({"jira": {"secret": "${J:-}"}}, {})
    assert not Helpdesk.model_validate(doc, context={REQUIRE_SECRETS_FROM_ENV: True}).jira.enabled


def _jira(timestamp: object) -> IncomingRequest:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    payload = {
        "timestamp": timestamp,
        "webhookEvent": "jira:issue_created",
        "issue": {
            "id": "10002",
            "fields": {
                "created": stamp,
                "updated": stamp,
                "reporter": {"emailAddress": "grace@contoso.com"},
                "issuetype": {"name": "Service Request"},
                "labels": ["mfa"],
                "status": {"statusCategory": {"key": "new"}},
            },
        },
    }
    body = json.dumps(payload).encode()
    return IncomingRequest(
        "POST", {"content-type": "application/json", "x-hub-signature": sign_jira(JIRA_SECRET, body)}, body
    )


async def test_a_jira_delivery_outside_the_timestamp_tolerance_is_refused_as_a_replay() -> None:
    kv = CountingKv(build_memory_state().aio.kv)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    stale = await accept_jira_webhook(_jira(now_ms - 25 * 3600 * 1000), deps=_deps(kv))
    assert stale.status == 401
    assert "timestamp" in stale.body["detail"]
    assert (await accept_jira_webhook(_jira(None), deps=_deps(kv))).status == 401
    assert kv.calls == []
    retried = await accept_jira_webhook(_jira(now_ms - 23 * 3600 * 1000), deps=_deps(kv))
    assert (retried.status, retried.body["outcome"]) == (202, "stored")


# B8 ---------------------------------------------------------------------------------------------


async def test_a_new_ticket_is_one_insert_a_replay_reads_once_and_a_first_non_mfa_state_reads_nothing() -> (
    None
):
    kv = CountingKv(build_memory_state().aio.kv)
    now = datetime.now(UTC).replace(microsecond=0)
    ticket = _ticket("INC-1", now - timedelta(minutes=5))
    assert (await accept_ticket_webhook(_signed(ticket), deps=_deps(kv))).body["outcome"] == "stored"
    assert kv.calls == ["insert"]
    kv.calls.clear()
    assert (await accept_ticket_webhook(_signed(ticket), deps=_deps(kv))).body["outcome"] == "unchanged"
    assert kv.calls == ["insert", "get"]
    kv.calls.clear()
    closed = {**ticket, "state": "closed", "closedAt": now.isoformat(), "updatedAt": now.isoformat()}
    assert (await accept_ticket_webhook(_signed(closed), deps=_deps(kv))).body["outcome"] == "updated"
    assert kv.calls == ["insert", "get", "replace"]
    kv.calls.clear()
    printer = {**_ticket("INC-2", now - timedelta(minutes=5)), "category": "Printing"}
    assert (await accept_ticket_webhook(_signed(printer), deps=_deps(kv))).body["outcome"] == "ignored"
    assert kv.calls == []
    # a re-filing update still finds the kept ticket and marks it no longer MFA-related
    refiled = {**closed, "category": "Printing", "updatedAt": (now + timedelta(seconds=1)).isoformat()}
    answer = await accept_ticket_webhook(_signed(refiled), deps=_deps(kv))
    assert (answer.body["outcome"], answer.body["mfaRelated"]) == ("updated", False)
    assert kv.calls == ["get", "replace"]
