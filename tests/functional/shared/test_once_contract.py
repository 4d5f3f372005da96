"""The ``once`` contract, against both state backends: the in-memory twin and Azure Tables (Azurite)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from shared.errors import BusyError, PermanentError, RetryableError
from shared.state import StateStores
from shared.state.once import CompletionNotRecorded, once
from tests.functional.shared.conftest import EXPIRY, FakeClock

TTL = timedelta(days=1)


class ProcessDied(BaseException):
    """The process going down mid-way: no code after it runs (not an error a handler could see)."""


async def test_the_work_runs_once_and_a_repeat_sees_its_result(stores: StateStores) -> None:
    runs = []
    for _ in range(3):
        async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
            if run.done:
                runs.append(("duplicate", run.result))
                continue
            runs.append(("did it", {}))
            await run.complete({"userId": "u-1"})
    assert runs == [("did it", {}), ("duplicate", {"userId": "u-1"}), ("duplicate", {"userId": "u-1"})]


async def test_leaving_the_block_without_complete_completes_without_a_result(stores: StateStores) -> None:
    async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
        assert run.acquired
    async with once(stores.aio.idempotency, "k", ttl=TTL) as again:
        assert (again.done, again.result) == (True, {})


async def test_an_error_mid_way_releases_the_key_and_is_what_propagates(stores: StateStores) -> None:
    with pytest.raises(RuntimeError, match="graph down"):
        async with once(stores.aio.idempotency, "k", ttl=TTL):
            raise RuntimeError("graph down")
    # never completed: the retry does the work at once
    async with once(stores.aio.idempotency, "k", ttl=TTL) as retry:
        assert retry.acquired
        assert not retry.done


async def test_a_cancelled_body_releases_the_key(stores: StateStores) -> None:
    started = asyncio.Event()

    async def work() -> None:
        async with once(stores.aio.idempotency, "k", ttl=TTL):
            started.set()
            await asyncio.Event().wait()  # until cancelled (an invocation timing out)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with once(stores.aio.idempotency, "k", ttl=TTL) as retry:
        assert retry.acquired


async def test_a_process_dying_mid_way_leaves_the_key_held_until_it_expires(
    stores: StateStores, clock: FakeClock
) -> None:
    with pytest.raises(ProcessDied):
        async with once(stores.aio.idempotency, "k", ttl=TTL):
            raise ProcessDied
    # a concurrent delivery is told to come back when the dead holder's claim expires
    with pytest.raises(BusyError) as busy:
        async with once(stores.aio.idempotency, "k", ttl=TTL, busy_message="someone has it"):
            pytest.fail("the body must not run while another holder has the key")
    assert busy.value.retry_after == pytest.approx(EXPIRY.total_seconds() + 1)
    assert "someone has it" in str(busy.value)
    # after the expiry the next delivery takes it over and is told so (to re-check partial work)
    clock.now += EXPIRY + timedelta(seconds=1)
    async with once(stores.aio.idempotency, "k", ttl=TTL) as takeover:
        assert takeover.acquired
        assert takeover.taken_over


async def test_when_busy_skip_runs_nothing_and_leaves_the_holder_alone(stores: StateStores) -> None:
    async with once(stores.aio.idempotency, "k", ttl=TTL) as holder:
        async with once(stores.aio.idempotency, "k", ttl=TTL, when_busy="skip") as other:
            assert (other.skipped, other.acquired, other.done) == (True, False, False)
            await other.complete({"ignored": True})  # a skipped run settles nothing
        assert holder.acquired
        await holder.complete({"by": "holder"})
    async with once(stores.aio.idempotency, "k", ttl=TTL) as later:
        assert later.result == {"by": "holder"}


async def test_release_gives_the_key_back_for_a_later_attempt(stores: StateStores) -> None:
    async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
        await run.release()  # e.g. a re-check scheduled for later
        assert not run.acquired
    async with once(stores.aio.idempotency, "k", ttl=TTL) as later:
        assert later.acquired


@pytest.mark.parametrize(
    "failure", [RetryableError("storage down"), PermanentError("storage refused: not authorised")]
)
async def test_a_completion_the_store_cannot_record_is_reported_not_swallowed(
    stores: StateStores, failure: Exception
) -> None:
    class CompleteFails:
        def __init__(self) -> None:
            self.inner = stores.aio.idempotency

        async def claim(self, key: str, **kwargs: object) -> object:
            return await self.inner.claim(key, **kwargs)  # type: ignore[arg-type]

        async def complete(self, *args: object, **kwargs: object) -> None:
            raise failure

        async def release(self, key: str, **kwargs: Any) -> None:
            await self.inner.release(key, **kwargs)

    with pytest.raises(CompletionNotRecorded) as failed:
        async with once(CompleteFails(), "k", ttl=TTL):  # type: ignore[arg-type]
            pass
    assert isinstance(failed.value, RetryableError)  # the message comes back; the work is idempotent


async def test_progress_checkpointed_is_handed_to_the_next_holder_after_an_error(stores: StateStores) -> None:
    async def first_attempt() -> None:
        async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
            assert run.progress is None  # a fresh claim: nothing to resume
            await run.checkpoint({"step": "tap", "methodId": "m-1"})
            raise RuntimeError("graph down")

    with pytest.raises(RuntimeError, match="graph down"):
        await first_attempt()
    async with once(stores.aio.idempotency, "k", ttl=TTL) as retry:
        assert retry.acquired
        assert not retry.taken_over  # released, not abandoned
        assert retry.progress == {"step": "tap", "methodId": "m-1"}
        await retry.complete({"done": True})
    async with once(stores.aio.idempotency, "k", ttl=TTL) as later:
        assert (later.done, later.result, later.progress) == (True, {"done": True}, None)


async def test_release_with_progress_leaves_it_for_the_scheduled_attempt(stores: StateStores) -> None:
    async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
        await run.release({"attempts": 1})  # a re-check scheduled for later, in the same write
    async with once(stores.aio.idempotency, "k", ttl=TTL) as recheck:
        assert recheck.acquired
        assert recheck.progress == {"attempts": 1}
        await recheck.release({"attempts": 2})
    async with once(stores.aio.idempotency, "k", ttl=TTL) as third:
        assert third.progress == {"attempts": 2}


async def test_a_dead_holders_checkpoints_reach_whoever_takes_over(
    stores: StateStores, clock: FakeClock
) -> None:
    async def dies() -> None:
        async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
            await run.checkpoint({"draftId": "d-1"})
            raise ProcessDied

    with pytest.raises(ProcessDied):
        await dies()
    clock.now += EXPIRY + timedelta(seconds=1)
    async with once(stores.aio.idempotency, "k", ttl=TTL) as takeover:
        assert takeover.taken_over
        assert takeover.progress == {"draftId": "d-1"}


async def test_a_holder_that_lost_its_claim_cannot_checkpoint_over_the_new_holder(
    stores: StateStores, clock: FakeClock
) -> None:
    from shared.state.idempotency import ClaimLost

    async with once(stores.aio.idempotency, "k", ttl=TTL) as slow:
        await slow.checkpoint({"by": "slow"})
        clock.now += EXPIRY + timedelta(seconds=1)  # the slow holder outlives its claim
        async with once(stores.aio.idempotency, "k", ttl=TTL) as new:
            assert new.taken_over
            assert new.progress == {"by": "slow"}
            await new.checkpoint({"by": "new"})
            with pytest.raises(ClaimLost):
                await slow.checkpoint({"by": "slow, again"})
            assert isinstance(ClaimLost("x"), RetryableError)
            await slow.release({"by": "slow, released"})  # not its claim any more: left alone
            await new.complete({"by": "new"})
    async with once(stores.aio.idempotency, "k", ttl=TTL) as later:
        assert later.result == {"by": "new"}


async def test_an_expired_completion_is_forgotten_with_its_progress(
    stores: StateStores, clock: FakeClock
) -> None:
    async with once(stores.aio.idempotency, "k", ttl=timedelta(hours=1)) as run:
        await run.checkpoint({"old": True})
        await run.complete()
    clock.now += timedelta(hours=2)
    async with once(stores.aio.idempotency, "k", ttl=TTL) as fresh:
        assert fresh.acquired
        assert fresh.progress is None


async def test_progress_that_is_not_small_json_is_refused_naming_the_field(stores: StateStores) -> None:
    from shared.errors import InvalidPayloadError

    async with once(stores.aio.idempotency, "k", ttl=TTL) as run:
        with pytest.raises(InvalidPayloadError, match="progress"):
            await run.checkpoint({"blob": "x" * 20_000})
        with pytest.raises(InvalidPayloadError, match="progress"):
            await run.checkpoint({"when": object()})
        await run.checkpoint({"ok": 1})
    async with once(stores.aio.idempotency, "k", ttl=TTL) as later:
        assert later.done
