"""A ``HostClock`` that only moves when told: ``sleep`` advances it at once and records what was asked."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class ManualClock:
    """Virtual time for the poller and timer runner: exact, and nothing waits for real."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - datetime(2000, 1, 1, tzinfo=self._now.tzinfo)).total_seconds()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        with self._lock:
            self.sleeps.append(round(seconds, 6))
            self._now += timedelta(seconds=max(0.0, seconds))
        time.sleep(0.001)  # let other threads run: the loop under test would otherwise spin
        return stop.is_set()
