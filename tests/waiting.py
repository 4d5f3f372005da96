"""Waiting on conditions, for tests that watch another process or thread: never a fixed sleep.

- ``wait_for(what, probe)``: the first truthy value of ``probe``, polled until a deadline
  (``wait_for_async`` for a coroutine ``probe``);
- ``holds_for(what, probe, seconds)``: ``probe`` stays true for a whole observation window (the
  negative check "nothing more happens": a straggler, an extra fetch). The window is a bound on
  what is observed, not a synchronisation: the test fails as soon as ``probe`` turns false.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.25) -> T:
    """The first truthy value ``probe`` returns; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def wait_for_async[T](
    what: str, probe: Callable[[], Awaitable[T | None]], within: float = 20.0, interval: float = 0.05
) -> T:
    """``wait_for`` for an async ``probe``, for ``within`` seconds (the test's loop keeps running)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def holds_for(what: str, probe: Callable[[], object], seconds: float, interval: float = 0.05) -> None:
    """AssertionError naming ``what`` the moment ``probe`` turns false within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if not probe():
            raise AssertionError(f"{what}: no longer true")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
