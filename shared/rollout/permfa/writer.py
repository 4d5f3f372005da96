"""Set users' per-user MFA states: one beta ``PATCH .../authentication/requirements`` per user, 20
per ``$batch``, paced to Graph's write budget.

Setting a state is idempotent (the same PATCH twice leaves the same state), so a throttled (429) or
failed (408, 5xx) item is simply sent again: after its own Retry-After, else a short back-off; a
fractional Retry-After calibrates the same pacer the membership writer uses. Any other answer is
final for that user (e.g. 404: the user was deleted meanwhile) and reported, never guessed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from shared.errors import RetryableError
from shared.graph.batch import BatchClient, BatchRequest, BatchResponse
from shared.rollout.membership.writer import WritePacer, take_ready

__all__ = ["StateWriteResult", "StateWriter"]

_MAX_ATTEMPTS: Final = 60


@dataclass(slots=True)
class StateWriteResult:
    """Per user id: ``"ok"`` or why the write failed; and what it cost."""

    outcomes: dict[str, str] = field(default_factory=dict)
    write_requests: int = 0
    throttled: int = 0
    round_trips: int = 0

    @property
    def written(self) -> list[str]:
        return [user for user, outcome in self.outcomes.items() if outcome == "ok"]

    @property
    def failed(self) -> dict[str, str]:
        return {user: outcome for user, outcome in self.outcomes.items() if outcome != "ok"}


@dataclass(slots=True)
class _Op:
    user_id: str
    state: str
    not_before: float = 0.0
    attempts: int = 0


class StateWriter:
    """Writes per-user MFA states through a beta ``BatchClient`` (one per run: it paces)."""

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

    async def apply(
        self,
        wanted: Mapping[str, str],
        *,
        progress: Callable[[int, int], None] | None = None,
        result: StateWriteResult | None = None,
        on_batch: Callable[[dict[str, str]], Awaitable[None]] | None = None,
    ) -> StateWriteResult:
        """Set each user's state to ``wanted[user_id]``; every user ends with an outcome, kept in
        ``result`` as it comes (pass one in to keep the outcomes of a run that raised).
        ``on_batch(outcomes)`` is awaited after each batch with the outcomes it settled (to record
        and audit them as they happen); it may raise to stop the run.

        Raises:
            RetryableError: Graph kept throttling or failing one item past every retry; the users
                not yet written have no outcome and rerunning is safe.
            RetryableError / PermanentError: a whole batch could not be sent.
        """
        result = result if result is not None else StateWriteResult()
        queue = [_Op(user_id, state) for user_id, state in wanted.items()]
        total = len(queue)
        while queue:
            ready = await take_ready(queue, self.pacer, clock=self._clock, sleep=self._sleep)
            before = set(result.outcomes)
            try:
                queue += await self._send(ready, result)
            finally:
                settled = {u: o for u, o in result.outcomes.items() if u not in before}
                if settled and on_batch is not None:
                    await on_batch(settled)
            if progress is not None:
                progress(len(result.outcomes), total)
        return result

    async def _send(self, ops: list[_Op], result: StateWriteResult) -> list[_Op]:
        requests = [
            BatchRequest(
                str(i),
                "PATCH",
                f"/users/{op.user_id}/authentication/requirements",
                body={"perUserMfaState": op.state},
            )
            for i, op in enumerate(ops)
        ]
        self.pacer.spend(len(requests))
        result.write_requests += len(requests)
        result.round_trips += 1
        answers = await self._batch.send(requests)
        again: list[_Op] = []
        throttles: list[float | None] = []
        given_up: RetryableError | None = None
        # Every answer is recorded before giving up on any item: a write that landed is never lost.
        for i, op in enumerate(ops):
            answer = answers[str(i)]
            if answer.throttled or answer.status >= 500 or answer.status == 408:
                if answer.throttled:
                    throttles.append(answer.retry_after)
                try:
                    again.append(self._again(op, answer))
                except RetryableError as exc:
                    given_up = given_up or exc
            elif answer.ok:
                result.outcomes[op.user_id] = "ok"
            else:
                result.outcomes[op.user_id] = _failure(answer)
        if throttles:
            result.throttled += len(throttles)
            self.pacer.on_throttled(throttles)
        else:
            self.pacer.on_clean_batch()
        if given_up is not None:
            raise given_up
        return again

    def _again(self, op: _Op, answer: BatchResponse) -> _Op:
        op.attempts += 1
        if op.attempts > _MAX_ATTEMPTS:
            raise RetryableError(
                f"Graph answered {answer.status} to a per-user MFA write {op.attempts} times",
                status=answer.status,
                retry_after=answer.retry_after,
            )
        fallback = 1.0 if answer.throttled else min(0.5 * 2**op.attempts, 30.0)
        op.not_before = self._clock() + (answer.retry_after if answer.retry_after is not None else fallback)
        return op


def _failure(answer: BatchResponse) -> str:
    why = answer.error_message or answer.error_code
    return f"Graph answered {answer.status}{': ' + why if why else ''}"
