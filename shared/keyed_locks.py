"""Per-key asyncio locks: one holder per key at a time within this process (other processes are kept
apart by ETags or ``once``). Locks are per event loop and are forgotten once nobody holds them."""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """``locks.of(key)``: the lock for ``key`` on the running loop."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def of(self, key: str) -> asyncio.Lock:
        slot = (id(asyncio.get_running_loop()), key)
        lock = self._locks.get(slot)
        if lock is None:
            lock = self._locks[slot] = asyncio.Lock()
        return lock
