"""Polling with a deadline, for tests that wait on another process or thread (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


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
