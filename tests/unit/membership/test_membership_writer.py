"""The batched writer against a fake Graph group behind httpx.MockTransport (no real waiting)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from shared.errors import NotFoundError
from shared.graph.batch import BatchClient
from shared.rollout.membership.writer import MembershipWriter

GROUP = "00000000-0000-0000-0000-0000000000aa"


class FakeGraph:
    """A group with Graph's $batch rules: PATCH binds all or nothing, per-item 429 from a bucket."""

    def __init__(self, users: set[str], *, tokens: float = 1e9, rate: float = 20.0) -> None:
        self.users = users
        self.members: set[str] = set()
        self.now = 0.0
        self.tokens = tokens
        self.rate = rate
        self.writes = 0
        self.throttled = 0
        self.round_trips = 0
        self.last = 0.0

    def take(self) -> float | None:
        self.tokens = min(self.tokens + (self.now - self.last) * self.rate, 1e9)
        self.last = self.now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate

    def item(self, req: dict[str, Any]) -> dict[str, Any]:
        wait = self.take()
        if wait is not None:
            self.throttled += 1
            return {"id": req["id"], "status": 429, "headers": {"Retry-After": f"{wait:.3f}"}}
        self.writes += 1
        if req["method"] == "PATCH":
            ids = [u.rsplit("/", 1)[1] for u in req["body"]["members@odata.bind"]]
            assert len(ids) <= 20
            unknown = [i for i in ids if i not in self.users]
            if unknown:
                return _error(req["id"], 404, f"Resource '{unknown[0]}' does not exist.")
            if any(i in self.members for i in ids):
                return _error(
                    req["id"], 400, "One or more added object references already exist for 'members'."
                )
            self.members.update(ids)
            return {"id": req["id"], "status": 204, "headers": {}}
        uid = req["url"].split("/")[-2]
        if uid not in self.members:
            return _error(req["id"], 404, f"Resource '{uid}' does not exist.")
        self.members.discard(uid)
        return {"id": req["id"], "status": 204, "headers": {}}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/$batch")
        self.round_trips += 1
        body = json.loads(request.content)
        assert len(body["requests"]) <= 20
        return httpx.Response(200, json={"responses": [self.item(r) for r in body["requests"]]})

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def _error(item_id: str, status: int, message: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": status,
        "body": {"error": {"code": "Request_BadRequest", "message": message}},
    }


def _writer(fake: FakeGraph) -> MembershipWriter:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    batch = BatchClient.for_http(http, "https://graph.test/v1.0")
    return MembershipWriter(batch, sleep=fake.sleep, clock=lambda: fake.now)


def _ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


async def test_adds_use_one_write_per_twenty_members_and_one_round_trip_per_400() -> None:
    # GIVEN 1,000 users to add and no throttling
    users = _ids(1000)
    fake = FakeGraph(set(users))
    # WHEN the writer adds them
    result = await _writer(fake).apply(GROUP, users, [])
    # THEN all are members, with 50 PATCH writes in 3 round trips
    assert fake.members == set(users)
    assert sorted(result.added) == sorted(users)
    assert (result.write_requests, fake.round_trips) == (50, 3)


async def test_one_invalid_user_is_narrowed_down_and_nineteen_good_ones_are_added() -> None:
    # GIVEN 40 users of which one does not exist
    users = _ids(40)
    bad = users[7]
    fake = FakeGraph(set(users) - {bad})
    # WHEN the writer adds all 40
    result = await _writer(fake).apply(GROUP, users, [])
    # THEN the 39 real users are members and only the bad one is reported failed
    assert fake.members == set(users) - {bad}
    assert [f["memberId"] for f in result.failed] == [bad]
    assert result.failed[0]["status"] == 404
    # and narrowing cost a handful of writes, not one per member
    assert result.write_requests <= 2 + 2 * 5


async def test_already_members_count_as_done() -> None:
    # GIVEN a group already holding 3 of 20 users
    users = _ids(20)
    fake = FakeGraph(set(users))
    fake.members.update(users[:3])
    # WHEN the writer adds all 20
    result = await _writer(fake).apply(GROUP, users, [])
    # THEN every user is a member, 3 reported as already members, nothing failed
    assert fake.members == set(users)
    assert sorted(result.already_members) == sorted(users[:3])
    assert result.failed == []


async def test_throttled_items_wait_for_their_retry_after_and_pacing_keeps_writes_near_the_floor() -> None:
    # GIVEN a budget of 30 tokens refilling at 20/s and 2,000 users (100 PATCH writes)
    users = _ids(2000)
    fake = FakeGraph(set(users), tokens=30, rate=20)
    # WHEN the writer adds them
    result = await _writer(fake).apply(GROUP, users, [])
    # THEN everyone is added, close to the budget's floor in time, with few 429s
    assert fake.members == set(users)
    assert fake.writes == 100
    floor = (100 - 30) / 20
    assert fake.now <= floor * 1.25
    assert result.throttled <= 25


async def test_removals_are_batched_and_absent_members_are_fine() -> None:
    # GIVEN a group with 30 members
    users = _ids(30)
    fake = FakeGraph(set(users))
    fake.members.update(users)
    # WHEN the writer removes 25 of them plus 2 that are not members
    gone = users[:25]
    strangers = _ids(40)[35:37]
    result = await _writer(fake).apply(GROUP, [], gone + strangers)
    # THEN the 25 are removed in 2 round trips and the 2 reported as already absent
    assert fake.members == set(users[25:])
    assert sorted(result.removed) == sorted(gone)
    assert sorted(result.already_absent) == sorted(strangers)
    assert fake.round_trips == 2


async def test_a_missing_group_stops_the_run() -> None:
    # GIVEN a Graph where the group itself is gone
    def handler(request: httpx.Request) -> httpx.Response:
        reqs = json.loads(request.content)["requests"]
        return httpx.Response(
            200,
            json={"responses": [_error(r["id"], 404, f"Resource '{GROUP}' does not exist.") for r in reqs]},
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    writer = MembershipWriter(BatchClient.for_http(http, "https://graph.test/v1.0"))
    # WHEN the writer adds members / THEN it names the missing group instead of splitting forever
    with pytest.raises(NotFoundError):
        await writer.apply(GROUP, _ids(20), [])
