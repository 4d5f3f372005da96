"""Group membership writes: 20 members per PATCH, 20 requests per ``$batch``, failures narrowed.

Adds are ``PATCH /groups/{id}`` with ``members@odata.bind`` (20 references, all or nothing: one
unknown or already-member object fails the whole request). A failed add is split in halves until
the bad member stands alone, so one bad user costs about ``2·log2(20)`` extra writes instead of
blocking nineteen good ones; a lone "already exist" 400 counts as done. Removals are
``DELETE /groups/{id}/members/{uid}/$ref`` (404: already gone). A 429 item waits for its own
Retry-After; a fractional Retry-After (Graph's "time until a token") also calibrates a pacer that
spaces later batches so the write budget is not hit again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from shared.errors import NotFoundError, RetryableError
from shared.graph.batch import MAX_BATCH_REQUESTS, BatchClient, BatchRequest, BatchResponse
from shared.graph.groups import ALREADY_MEMBER

__all__ = ["MEMBERS_PER_PATCH", "MembershipWriter", "WritePacer", "WriteResult", "take_ready"]

MEMBERS_PER_PATCH: Final = 20
_MAX_SERVER_ERRORS: Final = 4
_MAX_THROTTLES: Final = 60
_PROBE_FACTOR: Final = 1.2
_BACK_OFF: Final = 0.9
_MARGIN: Final = 0.92
_RECENT_RETRY_AFTERS: Final = 40
_PROBE_AFTER_CLEAN: Final = 16
_GRAPH_ROOT: Final = "https://graph.microsoft.com/v1.0/directoryObjects/"


@dataclass(slots=True)
class WriteResult:
    """What one ``apply`` did, member by member, and what it cost in requests."""

    added: list[str] = field(default_factory=list)
    already_members: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    already_absent: list[str] = field(default_factory=list)
    failed: list[dict[str, object]] = field(default_factory=list)
    write_requests: int = 0
    throttled: int = 0
    round_trips: int = 0


@dataclass(slots=True)
class _Op:
    kind: Literal["add", "remove"]
    members: tuple[str, ...]
    not_before: float = 0.0
    server_errors: int = 0
    throttles: int = 0


class WritePacer:
    """Spaces write batches once Graph has shown its refill rate (from fractional Retry-After)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.rate: float | None = None
        self._recent: deque[float] = deque(maxlen=_RECENT_RETRY_AFTERS)
        self._clean = 0
        self._tokens = 0.0
        self._updated = clock()

    def on_throttled(self, retry_afters: Sequence[float | None]) -> None:
        """Graph said the bucket is empty; a sub-second Retry-After is the time until the next token.

        That time is at most one token's refill time (less when a fraction of a token was left),
        so the largest of the recent ones estimates the refill rate best.
        """
        self._recent.extend(r for r in retry_afters if r is not None and 0 < r < 1)
        if self._recent:
            # The wait names the next token, not a whole one when a fraction was left: keep a margin.
            estimate = _MARGIN / max(self._recent)
            # Throttled while pacing: the estimate was too high; back off below it.
            self.rate = estimate if self.rate is None else min(estimate, self.rate * _BACK_OFF)
        self._tokens = 0.0
        self._clean = 0
        self._updated = self._clock()

    def delay_for(self, writes: int) -> float:
        """Seconds to wait before sending ``writes`` write requests (0 when not pacing)."""
        if self.rate is None:
            return 0.0
        self._refill()
        return max(0.0, (writes - self._tokens) / self.rate)

    def spend(self, writes: int) -> None:
        """Record ``writes`` sent."""
        self._refill()
        self._tokens -= writes

    def on_clean_batch(self) -> None:
        """A batch went through without 429; after a few in a row, probe a faster rate (a
        Retry-After may overstate the refill time, e.g. a 429 that was not the write budget)."""
        if self.rate is None:
            return
        self._clean += 1
        if self._clean >= _PROBE_AFTER_CLEAN:
            self._refill()
            self.rate *= _PROBE_FACTOR
            self._clean = 0

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None:
            # Capped at one batch: after idling the real bucket may be fuller, never assumed more.
            self._tokens = min(float(MAX_BATCH_REQUESTS), self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class _Due(Protocol):
    not_before: float


async def take_ready[T: _Due](
    queue: list[T],
    pacer: WritePacer,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> list[T]:
    """Wait until some writes in ``queue`` are due (each its ``not_before``) and the pacer lets
    them go; take up to one batch of them out of ``queue`` and return them."""
    while True:
        now = clock()
        ready = [op for op in queue if op.not_before <= now][:MAX_BATCH_REQUESTS]
        if ready:
            break
        await sleep(min(op.not_before for op in queue) - now)
    wait = pacer.delay_for(len(ready))
    if wait > 0:
        await sleep(wait)
    queue[:] = [op for op in queue if all(op is not r for r in ready)]
    return ready


class MembershipWriter:
    """Applies adds and removals to one group through ``$batch`` (one per process: it paces)."""

    def __init__(
        self,
        batch: BatchClient,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._batch = batch
        self._sleep = sleep
        self._clock = clock
        self.pacer = WritePacer(clock)

    async def apply(self, group_id: str, adds: Sequence[str], removes: Sequence[str]) -> WriteResult:
        """Add and remove these members; every member ends up in exactly one list of the result.

        Raises:
            NotFoundError: the group does not exist.
            RetryableError: Graph kept failing (5xx) or throttling an item; rerunning is safe.
        """
        result = WriteResult()
        queue = [
            _Op("add", tuple(adds[i : i + MEMBERS_PER_PATCH])) for i in range(0, len(adds), MEMBERS_PER_PATCH)
        ]
        queue += [_Op("remove", (uid,)) for uid in removes]
        while queue:
            ready = await take_ready(queue, self.pacer, clock=self._clock, sleep=self._sleep)
            queue += await self._send(group_id, ready, result)
        return result

    async def _send(self, group_id: str, ops: list[_Op], result: WriteResult) -> list[_Op]:
        requests = [_request(group_id, str(i), op) for i, op in enumerate(ops)]
        self.pacer.spend(len(requests))
        result.write_requests += len(requests)
        result.round_trips += 1
        answers = await self._batch.send(requests)
        again: list[_Op] = []
        throttles: list[float | None] = []
        for i, op in enumerate(ops):
            answer = answers[str(i)]
            if answer.throttled:
                throttles.append(answer.retry_after)
                again.append(self._throttled(op, answer))
            elif answer.status >= 500 or answer.status == 408:
                again.append(self._server_error(op, answer))
            else:
                again += _settle(group_id, op, answer, result)
        if throttles:
            result.throttled += len(throttles)
            self.pacer.on_throttled(throttles)
        else:
            self.pacer.on_clean_batch()
        return again

    def _throttled(self, op: _Op, answer: BatchResponse) -> _Op:
        op.throttles += 1
        if op.throttles > _MAX_THROTTLES:
            raise RetryableError("Graph kept throttling group writes", retry_after=answer.retry_after)
        op.not_before = self._clock() + (answer.retry_after if answer.retry_after is not None else 1.0)
        return op

    def _server_error(self, op: _Op, answer: BatchResponse) -> _Op:
        op.server_errors += 1
        if op.server_errors > _MAX_SERVER_ERRORS:
            raise RetryableError(
                f"Graph answered {answer.status} to a group write {op.server_errors} times",
                status=answer.status,
                retry_after=answer.retry_after,
            )
        backoff = answer.retry_after if answer.retry_after is not None else 0.5 * 2**op.server_errors
        op.not_before = self._clock() + backoff
        return op


def _request(group_id: str, item_id: str, op: _Op) -> BatchRequest:
    if op.kind == "add":
        binds = [_GRAPH_ROOT + uid for uid in op.members]
        return BatchRequest(item_id, "PATCH", f"/groups/{group_id}", body={"members@odata.bind": binds})
    return BatchRequest(item_id, "DELETE", f"/groups/{group_id}/members/{op.members[0]}/$ref")


def _settle(group_id: str, op: _Op, answer: BatchResponse, result: WriteResult) -> list[_Op]:
    """Record a final answer; a failed multi-member add comes back as its two halves."""
    if answer.status == 404 and group_id in answer.error_message:
        raise NotFoundError("the wave group does not exist", group_id=group_id)
    if op.kind == "remove":
        if answer.ok:
            result.removed.append(op.members[0])
        elif answer.status == 404:
            result.already_absent.append(op.members[0])
        else:
            result.failed.append(_failure("remove", op.members[0], answer))
        return []
    if answer.ok:
        result.added.extend(op.members)
        return []
    if len(op.members) > 1:
        half = len(op.members) // 2
        return [_Op("add", op.members[:half]), _Op("add", op.members[half:])]
    if answer.status == 400 and ALREADY_MEMBER in answer.error_message.lower():
        result.already_members.append(op.members[0])
    else:
        result.failed.append(_failure("add", op.members[0], answer))
    return []


def _failure(kind: str, member: str, answer: BatchResponse) -> dict[str, object]:
    return {
        "op": kind,
        "memberId": member,
        "status": answer.status,
        "code": answer.error_code,
        "message": answer.error_message[:200],
    }
