"""The sync plan (removal rules, blast radius) and the $batch client's parsing of sub-responses."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.config import Wave
from shared.errors import PermanentError, RetryableError, SafetyViolationError
from shared.graph.batch import BatchClient, BatchRequest
from shared.rollout.membership.desired import DesiredMembers
from shared.rollout.membership.plan import plan_membership

WAVE = Wave.model_validate(
    {
        "name": "pilot",
        "group": {"displayName": "Pilot"},
        "selectors": {"departments": ["IT"]},
        "blastRadius": 10,
    }
)


def _desired(
    members: set[str], assigned: dict[str, str | None], break_glass: tuple[str, ...] = ()
) -> DesiredMembers:
    return DesiredMembers("pilot", frozenset(members), assigned, break_glass, break_glass)


def test_adds_removes_and_never_lowering_protection_of_an_enforced_wave() -> None:
    # GIVEN pilot is enforced; its group holds a, b (moved to a report-only wave), c (moved to an
    # enforced wave), g (a nested group, unknown to the directory read) and bg (break-glass)
    desired = _desired(
        {"a", "n"}, {"a": "pilot", "n": "pilot", "b": "late", "c": "early", "bg": None}, ("bg",)
    )
    # WHEN the plan is made
    plan = plan_membership(
        WAVE, "gid", desired, ["a", "b", "c", "g", "bg"], enforced_waves={"pilot", "early"}
    )
    # THEN n is added; c and bg removed; b kept (it would lose MFA); g left alone
    assert plan.adds == ("n",)
    assert plan.removes == ("bg", "c")
    assert plan.kept == ("b",)
    assert plan.ignored == ("g",)
    assert plan.break_glass_skipped == ("bg",)


def test_a_wave_not_enforced_removes_whoever_left_it() -> None:
    desired = _desired(set(), {"b": "late"})
    plan = plan_membership(WAVE, "gid", desired, ["b"], enforced_waves=set())
    assert plan.removes == ("b",)


def test_over_the_blast_radius_the_run_is_refused_naming_the_counts() -> None:
    # GIVEN a selector that suddenly matches 11 people in a wave with blastRadius 10
    desired = _desired({f"u{i}" for i in range(11)}, {f"u{i}": "pilot" for i in range(11)})
    # WHEN planned / THEN refused with the counts and the rule
    with pytest.raises(SafetyViolationError, match="add 11 and remove 0 members") as caught:
        plan_membership(WAVE, "gid", desired, [], enforced_waves=set())
    assert caught.value.rule == "blast-radius"


def _client(answer: httpx.Response) -> tuple[BatchClient, list[dict[str, object]]]:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return answer

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return BatchClient.for_http(http, "https://graph.test/v1.0/"), seen


async def test_sub_responses_keep_their_status_fractional_retry_after_and_error_body() -> None:
    # GIVEN Graph answers a 200 batch with a 204, a 429 (Retry-After 2.128) and a 424
    answer = httpx.Response(
        200,
        json={
            "responses": [
                {
                    "id": "2",
                    "status": 424,
                    "body": {"error": {"code": "FailedDependency", "message": "on 1"}},
                },
                {"id": "1", "status": 429, "headers": {"Retry-After": "2.128"}},
                {"id": "0", "status": 204, "headers": {}},
            ]
        },
    )
    client, seen = _client(answer)
    requests = [
        BatchRequest("0", "PATCH", "/groups/g", body={"members@odata.bind": []}),
        BatchRequest("1", "DELETE", "/groups/g/members/u/$ref"),
        BatchRequest("2", "DELETE", "/groups/g/members/v/$ref", depends_on=("1",)),
    ]
    # WHEN sent
    got = await client.send(requests)
    # THEN each item is answered by id, with its own Retry-After and error
    assert got["0"].ok
    assert got["1"].throttled
    assert got["1"].retry_after == pytest.approx(2.128)
    assert (got["2"].status, got["2"].error_code) == (424, "FailedDependency")
    # AND the body Graph got has Content-Type on items with a body and dependsOn
    items = seen[0]["requests"]
    assert items[0]["headers"] == {"Content-Type": "application/json"}  # type: ignore[index]
    assert items[2]["dependsOn"] == ["1"]  # type: ignore[index]


async def test_a_throttled_batch_is_retryable_and_a_non_batch_answer_permanent() -> None:
    client, _ = _client(httpx.Response(429, headers={"Retry-After": "3"}))
    with pytest.raises(RetryableError) as caught:
        await client.send([BatchRequest("0", "GET", "/me")])
    assert caught.value.retry_after == 3
    client, _ = _client(httpx.Response(200, json={"value": []}))
    with pytest.raises(PermanentError, match="not a batch response"):
        await client.send([BatchRequest("0", "GET", "/me")])


async def test_more_than_twenty_requests_are_refused_before_sending() -> None:
    client, seen = _client(httpx.Response(200, json={"responses": []}))
    with pytest.raises(ValueError, match="1 to 20"):
        await client.send([BatchRequest(str(i), "GET", "/me") for i in range(21)])
    assert seen == []
