"""Each user's per-user MFA state, read through Graph beta's ``$batch``, 20 users per request.

``GET /beta/users/{id}/authentication/requirements`` answers ``{"perUserMfaState": "disabled" |
"enabled" | "enforced"}`` (needs ``Policy.Read.All``). A state that cannot be read (a 404, a 403, a
value Graph adds later, an item still throttled after the batch client's own retries) is
``unknown`` with the reason: never guessed, so nothing is ever migrated from a guess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from shared.graph.batch import MAX_BATCH_REQUESTS, BatchClient, BatchRequest, BatchResponse

__all__ = ["KNOWN_STATES", "PerUserState", "StateRead", "read_states"]

PerUserState = Literal["disabled", "enabled", "enforced", "unknown"]
KNOWN_STATES: Final[tuple[PerUserState, ...]] = ("disabled", "enabled", "enforced")
# Batches in flight at once: 2 x 20 reads keeps well inside Graph's per-app identity read budget.
CONCURRENT_BATCHES: Final = 2


@dataclass(frozen=True, slots=True)
class StateRead:
    """One user's state, and why it is ``unknown`` when it is."""

    state: PerUserState
    error: str = ""


async def read_states(
    batch: BatchClient,
    user_ids: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, StateRead]:
    """Every user's state (``batch`` must send beta requests: ``BatchClient.for_graph(client,
    version="beta")``). ``progress(done, total)`` is called after each batch.

    Raises:
        RetryableError / PermanentError: a whole batch failed (its items are not guessed).
    """
    unique = list(dict.fromkeys(user_ids))
    chunks = [unique[i : i + MAX_BATCH_REQUESTS] for i in range(0, len(unique), MAX_BATCH_REQUESTS)]
    results: dict[str, StateRead] = {}
    gate = asyncio.Semaphore(CONCURRENT_BATCHES)

    async def one(chunk: list[str]) -> None:
        requests = [
            BatchRequest(str(i), "GET", f"/users/{user_id}/authentication/requirements")
            for i, user_id in enumerate(chunk)
        ]
        async with gate:
            answers = await batch.send_reads(requests)
        for request, user_id in zip(requests, chunk, strict=True):
            results[user_id] = _state_of(answers[request.id])
        if progress is not None:
            progress(len(results), len(unique))

    await asyncio.gather(*(one(chunk) for chunk in chunks))
    return results


def _state_of(answer: BatchResponse) -> StateRead:
    if answer.status != 200 or not isinstance(answer.body, dict):
        why = answer.error_message or answer.error_code
        return StateRead("unknown", f"Graph answered {answer.status}{': ' + why if why else ''}")
    value = answer.body.get("perUserMfaState")
    for known in KNOWN_STATES:
        if value == known:
            return StateRead(known)
    return StateRead("unknown", f"unexpected perUserMfaState {value!r}")
