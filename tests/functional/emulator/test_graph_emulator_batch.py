"""$batch over raw HTTP (msgraph-sdk drops batch response bodies, kiota-python#737): per-item
answers, per-item throttling with Retry-After, dependsOn and the batch limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional

GRAPH = "https://graph.microsoft.com/v1.0"
JSON = {"Content-Type": "application/json"}


def add_member_item(item_id: str, group_id: str, user_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "method": "POST",
        "url": f"/groups/{group_id}/members/$ref",
        "headers": JSON,
        "body": {"@odata.id": f"{GRAPH}/directoryObjects/{user_id}"},
    }


async def post_batch(
    http: httpx.AsyncClient, emulator: EmulatorHandle, items: list[dict[str, Any]]
) -> dict[str, Any]:
    response = await http.post(f"{emulator.base_url}/$batch", json={"requests": items})
    assert response.status_code == 200, response.text
    return {answer["id"]: answer for answer in response.json()["responses"]}


async def new_group_and_sales_people(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> tuple[str, dict[str, dict[str, Any]], list[str]]:
    """A new group and one add-member item (ids "1".."20") for each of 20 Sales people."""
    group_id = (await http.post(f"{emulator.admin_url}/groups", json={"displayName": "Wave 4"})).json()["id"]
    users = [str(u["id"]) for u in emulator.store.users.values() if u["department"] == "Sales"][:20]
    items = {str(n): add_member_item(str(n), group_id, uid) for n, uid in enumerate(users, start=1)}
    return group_id, items, users


async def test_a_batch_over_the_write_budget_gets_exactly_its_capacity_and_429s_for_the_rest(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a write budget of 10 that refills one token per 6 minutes (none comes back during the test)
    emulator.reset(writeBudget={"capacity": 10, "perSeconds": 3600})
    group_id, items, users = await new_group_and_sales_people(emulator, http)

    # WHEN one batch of 20 writes is sent
    answers = await post_batch(http, emulator, list(items.values()))

    # THEN the first ten are done and the other ten throttled inside the 200, each with Retry-After
    statuses = [answers[str(n)]["status"] for n in range(1, 21)]
    assert statuses == [204] * 10 + [429] * 10
    assert {answers[str(n)]["headers"]["Retry-After"] for n in range(11, 21)} == {"360"}
    assert set(emulator.store.members[group_id]) == set(users[:10])


async def test_throttled_items_are_retried_after_retry_after_until_all_are_done(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a write budget of 10 writes per 2 s (5 per second) and 20 users to add to a new group
    emulator.reset(writeBudget={"capacity": 10, "perSeconds": 2})
    group_id, pending, users = await new_group_and_sales_people(emulator, http)

    # WHEN the caller sends one batch, then re-sends only the 429 items after their Retry-After
    rounds: list[dict[str, int]] = []
    while pending and len(rounds) < 10:
        answers = await post_batch(http, emulator, list(pending.values()))
        statuses = {item_id: answer["status"] for item_id, answer in answers.items()}
        rounds.append(statuses)
        throttled = [answers[i] for i, status in statuses.items() if status == 429]
        assert all(s in (204, 429) for s in statuses.values()), answers
        pending = {item_id: pending[item_id] for item_id in (a["id"] for a in throttled)}
        if throttled:
            # Not a synchronisation: waiting out Retry-After is the client behaviour under test.
            await asyncio.sleep(max(float(a["headers"]["Retry-After"]) for a in throttled))

    # THEN the first batch was throttled inside a 200 after the bucket's ten (a slow machine only
    # lets more through: ten writes refill in 2 s), every retry after Retry-After made progress,
    # and every user ended up a member
    assert [rounds[0][str(n)] for n in range(1, 11)] == [204] * 10
    assert 429 in rounds[0].values()
    assert all(204 in statuses.values() for statuses in rounds[1:])
    assert not pending
    assert set(emulator.store.members[group_id]) == set(users)


async def test_a_throttled_item_carries_graphs_error_and_retry_after(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    emulator.reset(writeBudget={"capacity": 1, "perSeconds": 30})
    assert emulator.demo is not None
    group = emulator.demo.it_pilot_group_id
    items = [
        {
            "id": "a",
            "method": "PATCH",
            "url": f"/groups/{group}",
            "headers": JSON,
            "body": {"description": "x"},
        },
        {
            "id": "b",
            "method": "PATCH",
            "url": f"/groups/{group}",
            "headers": JSON,
            "body": {"description": "y"},
        },
        {"id": "c", "method": "GET", "url": f"groups/{group}?$select=description"},
    ]

    answers = await post_batch(http, emulator, items)

    assert answers["a"]["status"] == 204
    assert answers["b"]["status"] == 429
    assert answers["b"]["headers"]["Retry-After"] == "30"
    assert answers["b"]["body"]["error"]["code"] == "TooManyRequests"
    assert answers["c"]["status"] == 200  # reads are not part of the write budget
    assert answers["c"]["body"]["description"] == "x"


async def test_depends_on_orders_items_and_a_failed_dependency_is_424(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    ghost = "00000000-0000-0000-0000-00000000beef"
    items = [
        {"id": "3", "method": "GET", "url": f"/users/{ghost}/manager", "dependsOn": ["2"]},
        {"id": "2", "method": "GET", "url": f"/users/{ghost}", "dependsOn": ["1"]},
        {"id": "1", "method": "GET", "url": "/users?$top=1&$select=id"},
    ]

    answers = await post_batch(http, emulator, items)
    log = (await http.get(f"{emulator.admin_url}/requests", params={"path": "users"})).json()["value"]

    assert [answers[i]["status"] for i in ("1", "2", "3")] == [200, 404, 424]
    assert answers["3"]["body"]["error"]["code"] == "FailedDependency"
    assert [entry["batchItemId"] for entry in log] == ["1", "2", "3"]
    assert len({entry["batchId"] for entry in log}) == 1


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)],
            "exceeds the limit: 21 given",
        ),
        ([{"id": "1", "method": "GET", "url": "/users"}] * 2, "duplicated: 1"),
        ([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}], "unknown request id(s): 9"),
        ([{"id": "1", "method": "GET", "url": f"{GRAPH}/users"}], "requests[0].url must be a URL relative"),
        (
            [{"id": "1", "method": "POST", "url": "/groups", "body": {"displayName": "x"}}],
            "does not contain Content-Type header",
        ),
    ],
)
async def test_bad_batches_are_refused_whole(
    emulator: EmulatorHandle, http: httpx.AsyncClient, items: list[dict[str, Any]], message: str
) -> None:
    response = await http.post(f"{emulator.base_url}/$batch", json={"requests": items})

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    log = (await http.get(f"{emulator.admin_url}/requests")).json()["value"]
    assert [entry["path"] for entry in log] == ["/v1.0/$batch"]  # no item ran
