"""The write budget's token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from local.graph_emulator.throttle import TokenBucket, WriteBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_capacity_writes_then_says_how_long_to_wait() -> None:
    # GIVEN 3 writes per 30 s (one token every 10 s)
    clock = FakeClock()
    bucket = TokenBucket(WriteBudget(capacity=3, per_seconds=30), clock=clock)

    # WHEN four writes arrive at once
    waits = [bucket.take() for _ in range(4)]

    # THEN three pass and the fourth must wait the 10 s one token takes
    assert waits[:3] == [None, None, None]
    assert waits[3] == pytest.approx(10.0)


def test_tokens_refill_with_time_but_never_above_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(WriteBudget(capacity=3, per_seconds=30), clock=clock)
    for _ in range(3):
        bucket.take()

    clock.now += 25  # 2.5 tokens
    assert bucket.take() is None
    assert bucket.take() is None
    assert bucket.take() == pytest.approx(5.0)  # half a token left: 5 s to the next

    clock.now += 3600
    assert bucket.available() == 3


def test_graphs_default_budget_is_3000_writes_per_150_seconds() -> None:
    budget = WriteBudget()

    assert (budget.capacity, budget.per_seconds) == (3000, 150)
    assert WriteBudget.time_scaled(10) == WriteBudget(capacity=300, per_seconds=15)


@pytest.mark.parametrize(
    ("fmt", "wait", "header"),
    [("integer", 0.2, "1"), ("integer", 2.128, "3"), ("integer", 5.0, "5"), ("decimal", 2.128, "2.128")],
)
def test_retry_after_header_formats(fmt: str, wait: float, header: str) -> None:
    bucket = TokenBucket(WriteBudget(retry_after_format=fmt))

    assert bucket.retry_after_header(wait) == header


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"capacity": 0}, "writeBudget.capacity must be a whole number of at least 1"),
        ({"capacity": 2.5}, "writeBudget.capacity must be a whole number"),
        ({"perSeconds": "soon"}, "writeBudget.perSeconds must be a number"),
        ({"perSeconds": 0}, "writeBudget.perSeconds must be a number above 0"),
        ({"timeScale": 10, "capacity": 5}, "cannot be combined"),
        ({"retryAfterFormat": "roman"}, "writeBudget.retryAfterFormat must be one of integer, decimal"),
        ({"burst": 1}, "writeBudget has unknown fields: burst"),
        ([], "writeBudget must be an object"),
    ],
)
def test_bad_budget_settings_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WriteBudget.from_json(raw)
