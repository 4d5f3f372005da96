"""Time as the mini-host's pollers and timers see it: injectable, so their tests run on a manual clock.

``SystemClock`` is the real one. A test passes its own ``HostClock`` (see
``tests/unit/minihost/manual_clock.py``) whose ``sleep`` advances virtual time at once and records
the duration asked for, so a schedule or a backoff is checked exactly, without waiting for it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["HostClock", "SystemClock"]


class HostClock(Protocol):
    """Wall-clock time, a monotonic counter, and an interruptible sleep."""

    def now(self) -> datetime:
        """The current time, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (lease ages, deadlines)."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; True when stopped."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))
