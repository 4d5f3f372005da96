"""Calls the emulator makes to other services, as Graph does: subscription validation and notifications.

Validation is synchronous (the subscription request waits for it, as with Graph); notifications go
out from one background thread, in order, so a request that changes membership never waits for the
subscriber. Each delivery is recorded (``GET /_emulator/notifications``) with its status and attempts;
a failed delivery is tried again a few times with a short pause (Graph keeps trying for hours).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import JsonObject

__all__ = ["Delivery", "Outbound", "post"]

ATTEMPTS: Final = 3
RETRY_PAUSE_SECONDS: Final = 0.2
DELIVERY_TIMEOUT_SECONDS: Final = 10.0
_KEPT: Final = 2000


@dataclass
class Delivery:
    """One POST of a notification collection to a subscriber."""

    url: str
    kind: str  # "change" | "lifecycle"
    body: JsonObject
    status: int | None = None
    attempts: int = 0
    error: str | None = None
    queued_at: str = ""
    delivered_at: str | None = None
    sequence: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> JsonObject:
        return {
            "sequence": self.sequence,
            "url": _without_query(self.url),
            "kind": self.kind,
            "notifications": len(self.body.get("value", [])),
            "value": self.body.get("value", []),
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "queuedAt": self.queued_at,
            "deliveredAt": self.delivered_at,
        }


def post(url: str, body: bytes, *, content_type: str, timeout: float) -> tuple[int, bytes]:
    """POST ``body``; (status, response body). A connection failure or timeout raises OSError."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class Outbound:
    """The background sender of notifications; ``stop()`` ends its thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._log: deque[Delivery] = deque(maxlen=_KEPT)
        self._lock = threading.Lock()
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name="graph-emulator-outbound", daemon=True)
        self._thread.start()

    def send(self, url: str, body: JsonObject, *, kind: str) -> Delivery:
        """Queue one notification collection for ``url``."""
        with self._lock:
            self._sequence += 1
            delivery = Delivery(
                url, kind, body, queued_at=iso_utc(datetime.now(UTC)), sequence=self._sequence
            )
            self._log.append(delivery)
        self._queue.put(delivery)
        return delivery

    def deliveries(self) -> list[JsonObject]:
        with self._lock:
            return [d.to_json() for d in self._log]

    def clear(self) -> None:
        with self._lock:
            self._log.clear()

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        data = json.dumps(delivery.body).encode("utf-8")
        for attempt in range(1, ATTEMPTS + 1):
            delivery.attempts = attempt
            try:
                status, _ = post(
                    delivery.url, data, content_type="application/json", timeout=DELIVERY_TIMEOUT_SECONDS
                )
            except OSError as exc:
                delivery.status, delivery.error = None, f"{type(exc).__name__}: {exc}"
            else:
                delivery.status, delivery.error = status, None
                if 200 <= status < 300:
                    break
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        delivery.delivered_at = iso_utc(datetime.now(UTC))
        delivery.done.set()


def _without_query(url: str) -> str:
    # The notification URL carries the function key (?code=); never show it in the admin API.
    return url.split("?", 1)[0]
