"""The CA policy API over httpx.MockTransport: Graph's paths and bodies, pacing to 1 request/s,
429s without Retry-After retried with our own backoff, Graph errors mapped to ours."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.config import BreakGlass, load_settings
from shared.errors import PermanentError, RetryableError
from shared.graph import build_graph_client
from shared.graph.conditional_access import CA_MIN_INTERVAL_SECONDS, ConditionalAccessApi

SETTINGS = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0", "GRAPH_TIMEOUT_SECONDS": "4"})
BASE = "http://127.0.0.1:7072/v1.0/identity/conditionalAccess/policies"
EXCLUSION = "0b5e5b1e-0000-4000-8000-00000000b6e0"
BREAK_GLASS = BreakGlass.model_validate(
    {"accounts": [{"id": "0b5e5b1e-0000-4000-8000-0000000000b1"}], "exclusionGroup": {"id": EXCLUSION}}
)
POLICY = {
    "displayName": "WaveGuard - Block legacy authentication",
    "state": "enabledForReportingButNotEnforced",
    "conditions": {
        "users": {
            "includeUsers": ["All"],
            "excludeGroups": [EXCLUSION],
            "excludeUsers": ["0b5e5b1e-0000-4000-8000-0000000000b1"],
        }
    },
}


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def _throttled(_: httpx.Request) -> httpx.Response:
    # The CA APIs answer 429 without a Retry-After header.
    return httpx.Response(429, json={"error": {"code": "TooManyRequests", "message": "Too many requests"}})


def _api(
    handler: Callable[[httpx.Request], httpx.Response], fake: FakeTime
) -> tuple[ConditionalAccessApi, list[Any]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    # max_retries=0: this test is about our own CA backoff, not the SDK middleware's retries
    client = build_graph_client(SETTINGS, http_client=http, max_retries=0, break_glass=BREAK_GLASS)
    return ConditionalAccessApi(client, sleep=fake.sleep, clock=fake.clock), seen


async def test_list_follows_next_links_and_requests_are_paced_one_per_second() -> None:
    fake = FakeTime()
    pages = {
        BASE: {"value": [{"id": "a", **POLICY}], "@odata.nextLink": f"{BASE}?$skiptoken=2"},
        f"{BASE}?$skiptoken=2": {"value": [{"id": "b", **POLICY}]},
    }
    api, seen = _api(lambda r: httpx.Response(200, json=pages[str(r.url).replace("%24", "$")]), fake)
    # WHEN every policy is listed
    policies = await api.list_policies()
    # THEN both pages are read, the second one a second after the first
    assert [p["id"] for p in policies] == ["a", "b"]
    assert [r.method for r in seen] == ["GET", "GET"]
    assert fake.sleeps == [CA_MIN_INTERVAL_SECONDS]


async def test_create_posts_the_policy_json_and_returns_graphs_answer() -> None:
    fake = FakeTime()
    api, seen = _api(lambda r: httpx.Response(201, json={"id": "new-id", **json.loads(r.content)}), fake)
    created = await api.create_policy(POLICY)
    assert created["id"] == "new-id"
    assert seen[0].method == "POST"
    assert str(seen[0].url) == BASE
    assert json.loads(seen[0].content) == POLICY
    assert seen[0].headers["Content-Type"].startswith("application/json")


async def test_update_patches_the_policy_by_id() -> None:
    fake = FakeTime()

    # (enabling: the break-glass guard first reads the live policy, which excludes break-glass)
    def answer(r: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=POLICY) if r.method == "GET" else httpx.Response(204)

    api, seen = _api(answer, fake)
    await api.update_policy("p-1", {"state": "enabled"})
    assert (seen[-1].method, str(seen[-1].url), json.loads(seen[-1].content)) == (
        "PATCH",
        f"{BASE}/p-1",
        {"state": "enabled"},
    )


async def test_a_429_without_retry_after_is_retried_with_a_growing_backoff() -> None:
    # GIVEN Graph throttles twice (no Retry-After), then accepts
    fake = FakeTime()
    answers: list[Callable[[httpx.Request], httpx.Response]] = [
        _throttled,
        _throttled,
        lambda r: httpx.Response(201, json={"id": "x"}),
    ]
    api, seen = _api(lambda r: answers.pop(0)(r), fake)
    # WHEN a policy is created
    created = await api.create_policy(POLICY)
    # THEN it waited 2 s, then 4 s, and the third attempt went through
    assert created == {"id": "x"}
    assert len(seen) == 3
    assert fake.sleeps == [2.0, 4.0]
    assert api.throttled == 2


async def test_throttling_past_the_budget_is_a_retryable_error() -> None:
    fake = FakeTime()
    api, seen = _api(_throttled, fake)
    with pytest.raises(RetryableError) as caught:
        await api.list_policies()
    assert caught.value.context["status"] == 429
    assert len(seen) == 5


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "BadRequest", PermanentError),
        (403, "Authorization_RequestDenied", PermanentError),
        (503, "ServiceUnavailable", RetryableError),
    ],
)
async def test_graph_refusals_map_to_waveguard_errors(
    status: int, code: str, expected: type[Exception]
) -> None:
    fake = FakeTime()
    body = {"error": {"code": code, "message": "conditions.users: invalid"}}
    api, seen = _api(lambda r: httpx.Response(status, json=body), fake)
    with pytest.raises(expected) as caught:
        await api.create_policy(POLICY)
    assert code in str(caught.value)
    assert len(seen) == 1  # a write is replayed only after a 429: a 5xx may hide an applied write


async def test_a_failed_read_is_retried() -> None:
    fake = FakeTime()
    answers = [
        httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}}),
        httpx.Response(200, json={"value": []}),
    ]
    api, seen = _api(lambda r: answers.pop(0), fake)
    assert await api.list_policies() == []
    assert len(seen) == 2
