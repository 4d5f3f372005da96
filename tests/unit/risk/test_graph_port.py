"""Identity Protection pacing: one call per second in the process, and 429s without Retry-After
backed off with growing waits; other Graph paths are not paced."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from shared.errors import RetryableError
from shared.risk.graph_port import IdentityProtectionPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def pacer(call: Any, time: FakeTime) -> IdentityProtectionPacer:
    return IdentityProtectionPacer(call, spacing=1.0, sleep=time.sleep, monotonic=time.monotonic)


async def test_identity_protection_calls_are_spaced_one_second_apart_and_others_are_not() -> None:
    time = FakeTime()
    seen: list[tuple[float, str]] = []

    async def call(method: str, path: str, body: Any) -> dict[str, Any]:
        seen.append((time.now, path))
        return {}

    port = pacer(call, time)
    for _ in range(3):
        await port.get("/identityProtection/riskDetections?$filter=x")
    await port.get("/users/abc")
    await port.get("/auditLogs/signIns")
    times = [t for t, p in seen if p.startswith("/identityProtection")]
    assert [b - a for a, b in itertools.pairwise(times)] == [1.0, 1.0]
    assert [t for t, p in seen if not p.startswith("/identityProtection")] == [times[-1]] * 2


async def test_a_429_without_retry_after_is_backed_off_with_growing_waits_then_succeeds() -> None:
    time = FakeTime()
    answers: list[Exception | dict[str, Any]] = [
        RetryableError("429"),
        RetryableError("429"),
        {"value": []},
    ]

    async def call(method: str, path: str, body: Any) -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    port = pacer(call, time)
    assert await port.get("/identityProtection/riskyUsers") == {"value": []}
    assert port.throttled == 2
    assert len(time.slept) == 2
    assert 1.6 <= time.slept[0] <= 2.4  # 2 s ± jitter
    assert 3.2 <= time.slept[1] <= 4.8  # then 4 s ± jitter


async def test_a_named_retry_after_is_honoured_and_a_throttle_that_never_ends_is_raised() -> None:
    time = FakeTime()

    async def call(method: str, path: str, body: Any) -> dict[str, Any]:
        raise RetryableError("429", retry_after=7.0)

    port = pacer(call, time)
    with pytest.raises(RetryableError):
        await port.get("/identityProtection/riskDetections")
    assert time.slept[:2] == [7.0, 7.0]
