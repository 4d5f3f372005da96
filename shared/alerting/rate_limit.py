"""Per-receiver rate limits shared by every worker: a sliding window of send times in Azure Tables.

``take_slot`` records a send when the receiver's window has room and answers 0; otherwise it
answers how many seconds until the oldest send leaves the window (nothing recorded). The window
(``alert-rate/<receiver>``) is updated with ETags, so two workers never both take the last slot.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Final

from shared.config.alerting import RateLimit
from shared.keyed_locks import KeyedLocks
from shared.state import AsyncKeyValuePort
from shared.state.errors import ConcurrencyError

__all__ = ["RATE_NAMESPACE", "take_slot"]

RATE_NAMESPACE: Final = "alert-rate"
_ATTEMPTS: Final = 20


# One window writer per receiver in this process (other processes are kept apart by ETags).
_locks = KeyedLocks()


async def take_slot(kv: AsyncKeyValuePort, receiver: str, limit: RateLimit, now: datetime) -> float:
    """0.0 when a send to ``receiver`` may happen now (and it is recorded), else the seconds to wait.

    Raises:
        ConcurrencyError: the window kept changing under heavy contention (retryable).
    """
    async with _locks.of(receiver):
        return await _take(kv, receiver, limit, now)


async def _take(kv: AsyncKeyValuePort, receiver: str, limit: RateLimit, now: datetime) -> float:
    moment = now.timestamp()
    # A little wider than the receiver's window: a send decided here arrives a few milliseconds
    # later, and two arrivals must never fall inside one window of the receiver's own count.
    window = limit.per_seconds * 1.05 + 0.1
    for _ in range(_ATTEMPTS):
        stored = await kv.get(RATE_NAMESPACE, receiver)
        value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        sent = sorted(
            float(t) for t in value.get("sent", []) if isinstance(t, int | float) and t > moment - window
        )
        if len(sent) >= limit.count:
            return max(0.05, sent[len(sent) - limit.count] + window - moment)
        try:
            await kv.put(
                RATE_NAMESPACE,
                receiver,
                {"sent": [round(t, 3) for t in [*sent, moment]]},
                if_match=stored.etag if stored is not None else None,
                if_absent=stored is None,
            )
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.03))
            continue
        return 0.0
    raise ConcurrencyError(f"the rate window of receiver {receiver} kept changing; retry")
