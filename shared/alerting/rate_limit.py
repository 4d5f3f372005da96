"""Per-receiver rate limits shared by every worker: a sliding window of send times in Azure Tables.

A receiver counts a notification when it arrives, somewhere between the moment WaveGuard decided
to send it and the moment the answer came back. So the window (``alert-rate/<receiver>``) holds,
for each send, the latest moment it can have arrived: while it is in flight, the decision time
plus the HTTP timeout; once answered, the answer's time (``settle_slot``). A new send is allowed
only when fewer than ``count`` of those fall inside the last ``perSeconds``, so no window of the
receiver's own ever sees more than ``count`` arrivals, however late a send was delivered.

``take_slot`` records a send and answers (0, token) when there is room, else (seconds to wait,
None). The record is updated with ETags (and one writer per receiver in this process), so two
workers never both take the last slot. This process remembers the window it last wrote, with its
ETag, and writes over that at once: one round trip per take and per settle while no other process
writes the window (when one has, the write's condition fails and the window is read afresh). A
remembered window that looks full is read afresh before anyone is told to wait.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Final

from shared.config.alerting import RateLimit
from shared.keyed_locks import KeyedLocks
from shared.state import AsyncKeyValuePort, Versioned
from shared.state.errors import ConcurrencyError

__all__ = ["IN_FLIGHT_SECONDS", "RATE_NAMESPACE", "settle_slot", "take_slot"]

RATE_NAMESPACE: Final = "alert-rate"
IN_FLIGHT_SECONDS: Final = 12.0  # the receivers' HTTP timeout (10 s) and some
_ATTEMPTS: Final = 20
_MARGIN: Final = 0.05

# One window writer per receiver in this process (other processes are kept apart by ETags).
_locks = KeyedLocks()
# The window this process last wrote, per store and receiver: written over at once with its ETag.
_known: weakref.WeakKeyDictionary[AsyncKeyValuePort, dict[str, Versioned]] = weakref.WeakKeyDictionary()


def _remembered(kv: AsyncKeyValuePort, receiver: str) -> Versioned | None:
    try:
        return _known.get(kv, {}).get(receiver)
    except TypeError:  # a store that takes no weak references is simply read every time
        return None


def _remember(kv: AsyncKeyValuePort, receiver: str, stored: Versioned | None) -> None:
    try:
        windows = _known.setdefault(kv, {})
    except TypeError:
        return
    if stored is None:
        windows.pop(receiver, None)
    else:
        windows[receiver] = stored


async def take_slot(
    kv: AsyncKeyValuePort, receiver: str, limit: RateLimit, now: datetime
) -> tuple[float, float | None]:
    """``(0.0, token)`` when a send to ``receiver`` may happen now (it is recorded as in flight),
    else ``(seconds to wait, None)``.

    Raises:
        ConcurrencyError: the window kept changing under heavy contention (retryable).
    """
    async with _locks.of(receiver):
        return await _take(kv, receiver, limit, now.timestamp())


async def settle_slot(kv: AsyncKeyValuePort, receiver: str, token: float, answered: datetime) -> None:
    """The send recorded as ``token`` was answered at ``answered``: that is its latest arrival."""
    async with _locks.of(receiver):
        await _update(kv, receiver, lambda sent: [answered.timestamp() if t == token else t for t in sent])


async def _take(
    kv: AsyncKeyValuePort, receiver: str, limit: RateLimit, moment: float
) -> tuple[float, float | None]:
    window = limit.per_seconds + _MARGIN
    stored = _remembered(kv, receiver)
    fresh = stored is None
    for _ in range(_ATTEMPTS):
        if stored is None:
            stored, fresh = await kv.get(RATE_NAMESPACE, receiver), True
        sent = _times(stored.value if stored is not None else None)
        inside = sorted(t for t in sent if t > moment - window)
        if len(inside) >= limit.count:
            if not fresh:  # another process may have settled or pruned it meanwhile
                stored = None
                continue
            _remember(kv, receiver, stored)
            return max(0.05, inside[len(inside) - limit.count] + window - moment), None
        token = round(moment + IN_FLIGHT_SECONDS, 3)
        value = {"sent": [*(t for t in sent if t > moment - window), token]}
        try:
            etag = await kv.put(
                RATE_NAMESPACE,
                receiver,
                value,
                if_match=stored.etag if stored is not None else None,
                if_absent=stored is None,
            )
        except ConcurrencyError:
            _remember(kv, receiver, None)
            stored = None
            await asyncio.sleep(random.uniform(0.005, 0.03))
            continue
        _remember(kv, receiver, Versioned(value, etag))
        return 0.0, token
    raise ConcurrencyError(f"the rate window of receiver {receiver} kept changing; retry")


async def _update(kv: AsyncKeyValuePort, receiver: str, change: Callable[[list[float]], list[float]]) -> None:
    stored = _remembered(kv, receiver)
    for _ in range(_ATTEMPTS):
        if stored is None:
            stored = await kv.get(RATE_NAMESPACE, receiver)
            if stored is None:
                return
        value = {"sent": [round(t, 3) for t in change(_times(stored.value))]}
        try:
            etag = await kv.put(RATE_NAMESPACE, receiver, value, if_match=stored.etag)
        except ConcurrencyError:
            _remember(kv, receiver, None)
            stored = None
            await asyncio.sleep(random.uniform(0.005, 0.03))
            continue
        _remember(kv, receiver, Versioned(value, etag))
        return
    raise ConcurrencyError(f"the rate window of receiver {receiver} kept changing; retry")


def _times(value: object) -> list[float]:
    sent = value.get("sent", []) if isinstance(value, dict) else []
    return [float(t) for t in sent if isinstance(t, int | float)]
