"""BatchClient.send_reads: throttled or failed read items are sent again alone, after their own
Retry-After (or a back-off), a bounded number of times (httpx.MockTransport as Graph)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.graph.batch import READ_ROUNDS, BatchClient, BatchRequest


class FlakyGraph:
    """Answers each $batch item 200, except the first ``fail[id]`` times it sees that id."""

    def __init__(self, fail: dict[str, tuple[int, int, dict[str, str]]]) -> None:
        self.fail = {k: list(v) for k, v in fail.items()}  # id -> [times, status, headers]
        self.batches: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["requests"]
        self.batches.append([i["id"] for i in items])
        answers: list[dict[str, Any]] = []
        for item in items:
            left = self.fail.get(item["id"])
            if left and left[0] > 0:
                left[0] -= 1
                answers.append({"id": item["id"], "status": left[1], "headers": left[2], "body": {}})
            else:
                answers.append({"id": item["id"], "status": 200, "body": {"value": [item["url"]]}})
        return httpx.Response(200, json={"responses": answers})


async def _client(graph: FlakyGraph) -> BatchClient:
    return BatchClient.for_http(httpx.AsyncClient(transport=httpx.MockTransport(graph)), "http://graph/v1.0")


async def test_failed_items_are_sent_again_alone_after_their_retry_after_or_a_back_off() -> None:
    graph = FlakyGraph({"b": (1, 429, {"Retry-After": "1.5"}), "c": (2, 503, {})})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = await _client(graph)
    reads = [BatchRequest(i, "GET", f"/users/{i}") for i in "abc"]
    answers = await client.send_reads(reads, sleep=sleep)
    assert {k: a.status for k, a in answers.items()} == {"a": 200, "b": 200, "c": 200}
    assert graph.batches == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert waits == [1.5, 1.0]  # b's Retry-After; then c alone, with no header: the second back-off


async def test_an_item_failing_every_round_comes_back_as_it_failed_and_writes_are_refused() -> None:
    graph = FlakyGraph({"a": (99, 503, {"Retry-After": "60"})})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = await _client(graph)
    answers = await client.send_reads([BatchRequest("a", "GET", "/users/a")], sleep=sleep, max_wait=5)
    assert answers["a"].status == 503
    assert len(graph.batches) == READ_ROUNDS
    assert waits == [5] * (READ_ROUNDS - 1)  # Retry-After capped at max_wait
    with pytest.raises(ValueError, match="GET"):
        await client.send_reads([BatchRequest("w", "POST", "/groups", body={})])
