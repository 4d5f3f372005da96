"""The hire's send and group add in one $batch: each settled on its own, throttled items sent again
alone, a failed send never repeated, and the break-glass guard on the member add (the real client
and middleware over httpx.MockTransport as Graph)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.config import BreakGlass, load_settings
from shared.errors import NotFoundError, PermanentError, RetryableError, SafetyViolationError
from shared.graph import build_graph_client
from shared.graph.hire_writes import send_draft_and_add_member

SETTINGS = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0"})
BREAK_GLASS_ID = "0b5e5b1e-0000-4000-8000-0000000000b1"
BREAK_GLASS = BreakGlass.model_validate(
    {"accounts": [{"id": BREAK_GLASS_ID}], "exclusionGroup": {"id": "0b5e5b1e-0000-4000-8000-00000000e0e0"}}
)
GROUP, HIRE = "9a000000-0000-4000-8000-000000000001", "9b000000-0000-4000-8000-000000000002"


class Graph:
    """Answers each $batch item from a script per id (a list: one answer per time the id is seen;
    the last repeats), recording every batch."""

    def __init__(self, *, refuse_from: int | None = None, **answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.batches: list[list[dict[str, Any]]] = []
        self.refuse_from = refuse_from  # from this batch on, the batch itself is refused (400)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1.0/$batch"
        items = json.loads(request.content)["requests"]
        self.batches.append(items)
        if self.refuse_from is not None and len(self.batches) >= self.refuse_from:
            return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "refused"}})
        out = []
        for item in items:
            script = self.answers.get(item["id"]) or [{"status": 204}]
            answer = script.pop(0) if len(script) > 1 else script[0]
            out.append({"id": item["id"], **answer})
        return httpx.Response(200, json={"responses": out})


def _error(status: int, message: str, **headers: str) -> dict[str, Any]:
    return {"status": status, "headers": headers, "body": {"error": {"code": "x", "message": message}}}


async def _run(graph: Graph, member: str = HIRE) -> Any:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = build_graph_client(
        SETTINGS, http_client=httpx.AsyncClient(transport=httpx.MockTransport(graph)), break_glass=BREAK_GLASS
    )
    outcome = await send_draft_and_add_member(
        client, "it@contoso.com", "AAk=draft", GROUP, member, sleep=sleep
    )
    return outcome, waits


async def test_one_batch_sends_the_draft_with_immutable_ids_and_adds_the_member() -> None:
    graph = Graph(send=[{"status": 202}], join=[{"status": 204}])
    outcome, waits = await _run(graph)
    assert (outcome.sent, outcome.joined, waits) == (None, True, [])
    [[send, join]] = graph.batches
    assert (send["method"], send["url"]) == ("POST", "/users/it@contoso.com/messages/AAk=draft/send")
    assert send["headers"] == {"Prefer": 'IdType="ImmutableId"'}
    assert (join["method"], join["url"]) == ("POST", f"/groups/{GROUP}/members/$ref")
    assert join["body"] == {"@odata.id": f"http://127.0.0.1:7072/v1.0/directoryObjects/{HIRE}"}


async def test_each_item_is_settled_on_its_own() -> None:
    # already a member is success; a draft that is gone is not found
    outcome, _ = await _run(
        Graph(
            send=[_error(404, "not found")],
            join=[_error(400, "One or more added object references already exist")],
        )
    )
    assert isinstance(outcome.sent, NotFoundError)
    assert outcome.joined is False
    # the send went out while the group add was refused, or the group is gone
    outcome, _ = await _run(Graph(send=[{"status": 202}], join=[_error(403, "Insufficient privileges")]))
    assert outcome.sent is None
    assert isinstance(outcome.joined, PermanentError)
    outcome, _ = await _run(Graph(send=[{"status": 202}], join=[_error(404, "group not found")]))
    assert isinstance(outcome.joined, NotFoundError)


async def test_a_throttled_item_is_sent_again_alone_after_its_retry_after() -> None:
    graph = Graph(
        send=[_error(429, "throttled", **{"Retry-After": "2"}), {"status": 202}], join=[{"status": 204}]
    )
    outcome, waits = await _run(graph)
    assert (outcome.sent, outcome.joined) == (None, True)
    assert [[item["id"] for item in batch] for batch in graph.batches] == [["send", "join"], ["send"]]
    assert waits == [2.0]


async def test_a_send_that_failed_on_the_server_is_never_repeated_here() -> None:
    # a 500 may hide a send that happened: the caller reads the draft's state before any new send
    graph = Graph(send=[_error(500, "boom")], join=[{"status": 204}])
    outcome, waits = await _run(graph)
    assert isinstance(outcome.sent, RetryableError)
    assert outcome.joined is True
    assert len(graph.batches) == 1
    assert waits == []


async def test_an_item_throttled_every_round_comes_back_retryable_with_graphs_wait() -> None:
    graph = Graph(send=[{"status": 202}], join=[_error(429, "throttled", **{"Retry-After": "30"})])
    outcome, waits = await _run(graph)
    assert outcome.sent is None
    assert isinstance(outcome.joined, RetryableError)
    assert outcome.joined.retry_after == 30.0
    assert len(graph.batches) == 4  # the batch, then the add alone three more times
    assert waits == [10.0, 10.0, 10.0]  # Retry-After, capped at the in-process wait


async def test_the_guard_refuses_a_break_glass_member_add_inside_the_batch_and_nothing_is_sent() -> None:
    graph = Graph()
    with pytest.raises(SafetyViolationError):
        await _run(graph, member=BREAK_GLASS_ID)
    assert graph.batches == []


async def test_a_later_round_that_fails_keeps_what_the_first_round_settled() -> None:
    # GIVEN the send is throttled while the group add happens, and the send's re-send fails outright
    graph = Graph(
        refuse_from=2, send=[_error(429, "throttled", **{"Retry-After": "1"})], join=[{"status": 204}]
    )
    outcome, waits = await _run(graph)
    # THEN the group add is reported as done, and the send as retryable (read back before any resend)
    assert outcome.joined is True
    assert isinstance(outcome.sent, RetryableError)
    assert len(graph.batches) == 2
    assert waits == [1.0]
