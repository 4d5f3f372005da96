"""The per-receiver rate window: one round trip per take and settle in the process that owns it, and
never more than the limit between processes whose remembered windows go stale."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from shared.alerting.rate_limit import IN_FLIGHT_SECONDS, settle_slot, take_slot
from shared.config.alerting import RateLimit
from shared.offload import direct
from shared.state.aio import AsyncKeyValue
from shared.state.memory import MemoryKeyValueStore

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class CountingStore(MemoryKeyValueStore):
    """A memory store that counts its reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        self.calls["read"] += 1
        return super()._read(namespace, key)

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        self.calls["write"] += 1
        return super()._write(namespace, key, text, if_match=if_match, if_absent=if_absent)


def process(store: MemoryKeyValueStore) -> AsyncKeyValue:
    """One worker process's view of the shared store (each remembers its own window)."""
    return AsyncKeyValue(store, offload=direct)


async def test_the_process_that_owns_the_window_pays_one_write_per_take_and_per_settle() -> None:
    store = CountingStore()
    kv = process(store)
    limit = RateLimit(count=100, per_seconds=60)
    wait, token = await take_slot(kv, "pager", limit, T0)  # the first take reads the window once
    assert (wait, token is not None) == (0.0, True)
    assert token is not None
    await settle_slot(kv, "pager", token, T0 + timedelta(seconds=0.2))
    store.calls.clear()
    for n in range(10):
        moment = T0 + timedelta(seconds=1 + n)
        _, token = await take_slot(kv, "pager", limit, moment)
        assert token is not None
        await settle_slot(kv, "pager", token, moment + timedelta(seconds=0.1))
    assert store.calls == Counter(write=20)  # no reads: the window this process wrote is still current


async def test_two_processes_with_stale_windows_never_grant_more_than_the_limit() -> None:
    store = MemoryKeyValueStore()
    a, b = process(store), process(store)
    limit = RateLimit(count=3, per_seconds=60)
    granted = []
    for n in range(12):  # the two alternate: each one's remembered window is stale every time
        who = (a, b)[n % 2]
        _, token = await take_slot(who, "pager", limit, T0 + timedelta(seconds=n))
        if token is not None:
            granted.append(n)
    assert granted == [0, 1, 2]


async def test_a_window_that_looks_full_is_read_again_before_anyone_is_told_to_wait() -> None:
    store = MemoryKeyValueStore()
    a, b = process(store), process(store)
    limit = RateLimit(count=1, per_seconds=1)
    _, token = await take_slot(a, "slack", limit, T0)  # a remembers it in flight (until T0 + 12 s)
    assert token is not None
    await settle_slot(b, "slack", token, T0 + timedelta(seconds=0.1))  # b saw the answer come back
    wait, again = await take_slot(a, "slack", limit, T0 + timedelta(seconds=1.2))
    assert (wait, again is not None) == (0.0, True)  # not IN_FLIGHT_SECONDS later: a read it afresh
    wait, none = await take_slot(a, "slack", limit, T0 + timedelta(seconds=1.3))
    assert none is None
    assert 0 < wait <= IN_FLIGHT_SECONDS + 1.1
