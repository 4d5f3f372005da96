"""The emulator's clock: real UTC time, with delays (provisioning lag, rate-limit windows) shrunk by a
time scale so tests of hour-long behaviour run in seconds.

``timeScale: 10`` makes a user created with ``visibleAfterSeconds: 120`` appear after 12 s and a
10-second rate-limit window last 1 s. Lifetimes the client computes itself (TAP expiry) stay real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class EmulatorClock:
    """UTC now plus the time scale that delays are divided by."""

    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(time_scale, bool) or not isinstance(time_scale, int | float) or time_scale <= 0:
            raise ValueError(f"timeScale must be a number above 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._now = now
        self._monotonic = monotonic

    def now(self) -> datetime:
        """The current UTC time."""
        return self._now()

    def monotonic(self) -> float:
        """Seconds for measuring windows (never goes back)."""
        return self._monotonic()

    def scaled(self, seconds: float) -> float:
        """How long ``seconds`` of emulated time takes in real time."""
        return seconds / self.time_scale


def iso_utc(moment: datetime) -> str:
    """A timestamp as Graph writes them: UTC with 'Z' and up to 7 fractional digits (here 6)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    """An ISO 8601 timestamp ('Z' or an offset; no zone means UTC).

    Raises:
        ValueError: the text is not a timestamp.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Graph sends up to 7 fractional digits; Python reads at most 6
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
