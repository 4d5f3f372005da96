"""The request log tests read through ``GET /_emulator/requests``: one entry per Graph call and per
``$batch`` item (items carry the id of their batch). Each entry keeps the caller's W3C
``traceparent`` (a batch item inherits its batch's), so one trace can be followed from an HTTP
request into the Graph calls it caused."""

from __future__ import annotations

import re
import threading
from collections import deque
from datetime import UTC, datetime
from urllib.parse import unquote

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.routing import Request

MAX_ENTRIES = 50_000


class RequestLog:
    """A bounded, thread-safe list of served requests, oldest first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: deque[JsonObject] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def record(self, request: Request, status: int, *, duration_ms: float, injected: bool) -> None:
        entry: JsonObject = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": request.method,
            "path": unquote(request.path),
            "query": "&".join(f"{name}={value}" for name, value in request.query),
            "status": status,
            "durationMs": round(duration_ms, 3),
            "requestId": request.request_id,
            "clientRequestId": request.client_request_id,
            "batchId": request.batch_id,
            "batchItemId": request.batch_item_id,
            "injectedFault": injected,
            "traceparent": request.traceparent,
        }
        with self._lock:
            self._entries.append(entry)

    def entries(self, *, method: str | None = None, path: str | None = None) -> list[JsonObject]:
        """The entries, optionally only one method and paths matching a regex."""
        pattern = re.compile(path) if path else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (method is None or e["method"] == method.upper())
            and (pattern is None or pattern.search(e["path"]))
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
