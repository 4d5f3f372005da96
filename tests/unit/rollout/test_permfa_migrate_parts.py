"""The parts of the per-user MFA migration: the paced state writer (retries what Graph throttled or
failed, keeps what it did when it gives up) and the write-ahead ledger (newest run per user)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.errors import RetryableError
from shared.graph.batch import BatchClient
from shared.rollout.permfa.ledger import (
    latest_entries,
    ledger_namespace,
    mark,
    read_ledger,
    settle_pages,
    write_ahead,
)
from shared.rollout.permfa.writer import StateWriter, StateWriteResult
from shared.state import build_memory_state

USERS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(45)]


class Graph:
    """A beta $batch endpoint: each PATCH item answered by ``script(user, attempt)`` -> (status, headers)."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.attempts: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        responses = []
        for item in json.loads(request.content)["requests"]:
            assert item["method"] == "PATCH"
            user = item["url"].split("/")[2]
            self.attempts[user] += 1
            self.bodies.append(item["body"])
            status, headers = self.script(user, self.attempts[user])
            body = None if status == 204 else {"error": {"code": "x", "message": f"status {status}"}}
            responses.append({"id": item["id"], "status": status, "headers": headers, "body": body})
        return httpx.Response(200, json={"responses": responses})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


def _writer(graph: Graph, clock: Clock) -> StateWriter:
    http = httpx.AsyncClient(transport=httpx.MockTransport(graph))
    batch = BatchClient.for_http(http, "http://graph.test/beta")
    return StateWriter(batch, sleep=clock.sleep, clock=clock)


def test_throttled_and_failed_items_are_sent_again_and_final_answers_are_kept() -> None:
    # GIVEN Graph throttling one user once (Retry-After 2), a 503 for another once, a 404 for a third
    def script(user: str, attempt: int) -> tuple[int, dict[str, str]]:
        if user == USERS[0] and attempt == 1:
            return 429, {"Retry-After": "2"}
        if user == USERS[1] and attempt == 1:
            return 503, {}
        if user == USERS[2]:
            return 404, {}
        return 204, {}

    graph, clock = Graph(script), Clock()
    # WHEN 45 users are set to disabled
    result = asyncio.run(_writer(graph, clock).apply(dict.fromkeys(USERS, "disabled")))
    # THEN everyone has an outcome: the retried ones ok, the 404 failed with Graph's words
    assert set(result.outcomes) == set(USERS)
    assert result.failed == {USERS[2]: "Graph answered 404: status 404"}
    assert graph.attempts[USERS[0]] == 2
    assert graph.attempts[USERS[1]] == 2
    assert result.throttled == 1
    assert clock.now >= 2.0  # the throttled item was not sent again before its Retry-After
    assert all(body == {"perUserMfaState": "disabled"} for body in graph.bodies)
    # AND 45 users cost 3 batches, plus one per retry as each falls due (after 1 s and 2 s)
    assert result.round_trips == 5
    assert result.write_requests == 47


def test_an_item_failing_past_every_retry_raises_and_keeps_what_was_done() -> None:
    graph, clock = Graph(lambda user, attempt: (503, {}) if user == USERS[3] else (204, {})), Clock()
    result = StateWriteResult()
    with pytest.raises(RetryableError, match="503 to a per-user MFA write"):
        asyncio.run(_writer(graph, clock).apply(dict.fromkeys(USERS[:10], "disabled"), result=result))
    assert set(result.outcomes) == set(USERS[:10]) - {USERS[3]}
    assert USERS[3] not in result.outcomes  # never guessed


def test_the_ledger_is_written_ahead_settled_and_read_back_newest_run_first() -> None:
    kv = build_memory_state().aio.kv
    first = datetime(2026, 12, 1, tzinfo=UTC)
    users = [(u, f"u{i}@contoso.com", "enforced") for i, u in enumerate(USERS)]
    # WHEN a run records 45 users ahead and settles only some of them (then dies)
    pages = asyncio.run(write_ahead(kv, "pilot", "run1", first, users))
    assert [len(p["users"]) for p in pages] == [20, 20, 5]
    asyncio.run(
        settle_pages(
            kv, "pilot", pages, {USERS[0]: ("disabled", ""), USERS[44]: ("failed", "Graph answered 404")}
        )
    )
    entries = asyncio.run(latest_entries(kv, "pilot"))
    # THEN the ledger knows every user: done, failed, or still pending (the write may have landed)
    assert entries[USERS[0]].outcome == "disabled"
    assert entries[USERS[44]].outcome == "failed"
    assert entries[USERS[44]].detail == "Graph answered 404"
    assert entries[USERS[1]].outcome == "pending"
    assert {e.previous for e in entries.values()} == {"enforced"}
    # WHEN a later run records one of them again with another previous state
    later = datetime(2026, 12, 2, tzinfo=UTC)
    asyncio.run(write_ahead(kv, "pilot", "run2", later, [(USERS[1], "u1@contoso.com", "enabled")]))
    entries = asyncio.run(latest_entries(kv, "pilot"))
    # THEN the newest run's entry wins for that user
    assert (entries[USERS[1]].previous, entries[USERS[1]].run) == ("enabled", "run2")
    # AND marking across runs reaches the right pages
    asyncio.run(mark(kv, "pilot", {u: (entries[u], "restored", "") for u in (USERS[0], USERS[1])}))
    entries = asyncio.run(latest_entries(kv, "pilot"))
    assert entries[USERS[0]].outcome == "restored"
    assert entries[USERS[1]].outcome == "restored"
    assert entries[USERS[2]].outcome == "pending"
    # AND another wave's ledger is apart
    assert asyncio.run(latest_entries(kv, "finance")) == {}


def test_a_write_that_landed_is_kept_even_when_another_item_of_its_batch_gives_up() -> None:
    # GIVEN two users failing together; the second one's write lands on the very attempt the first gives up
    def script(user: str, attempt: int) -> tuple[int, dict[str, str]]:
        if user == USERS[1] and attempt == 61:
            return 204, {}
        return (503, {}) if user in USERS[:2] else (204, {})

    graph, clock = Graph(script), Clock()
    result = StateWriteResult()
    batches: list[dict[str, str]] = []

    async def on_batch(settled: dict[str, str]) -> None:
        batches.append(settled)

    with pytest.raises(RetryableError):
        asyncio.run(
            _writer(graph, clock).apply(
                dict.fromkeys(USERS[:2], "disabled"), result=result, on_batch=on_batch
            )
        )
    # THEN the landed write is recorded, and reported to the per-batch hook, before the run gives up
    assert result.outcomes == {USERS[1]: "ok"}
    assert batches == [{USERS[1]: "ok"}]


def test_unreadable_ledger_rows_are_reported_and_never_acted_on() -> None:
    kv = build_memory_state().aio.kv
    at = datetime(2026, 12, 1, tzinfo=UTC)
    asyncio.run(write_ahead(kv, "pilot", "run1", at, [(USERS[0], "a@contoso.com", "enforced")]))
    page = {"wave": "pilot", "run": "run0", "at": at.isoformat(), "page": 0}
    bad_rows = [
        {"id": "not-a-guid", "previous": "enabled"},
        {"previous": "enabled"},
        "text",
        {"id": USERS[1]},
    ]
    asyncio.run(kv.put(ledger_namespace("pilot"), "run0:00000", {**page, "users": bad_rows}))
    asyncio.run(kv.put(ledger_namespace("pilot"), "junk", ["not", "a", "page"]))
    entries, unreadable = asyncio.run(read_ledger(kv, "pilot"))
    assert set(entries) == {USERS[0]}
    assert len(unreadable) == 5
