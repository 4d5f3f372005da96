"""A tiny HTTP endpoint standing in for a subscriber: it answers Graph's validation call (or answers
it wrongly or slowly, on purpose) and keeps every notification POSTed to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Receiver:
    """What the endpoint saw, and how it answers validation (``echo``: "right", "wrong", "slow:<s>")."""

    url: str
    echo: str = "right"
    validations: list[str] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notifications(self) -> list[dict[str, Any]]:
        with self.lock:
            return [item for body in self.posts for item in body.get("value", [])]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """An endpoint on a free loopback port for the duration of the block."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            token = parse_qs(parts.query).get("validationToken")
            with state.lock:
                state.paths.append(self.path)
            if token is not None:
                state.validations.append(token[0])
                reply = token[0]
                if state.echo == "wrong":
                    reply = reply + "x"
                elif state.echo.startswith("slow:"):
                    time.sleep(float(state.echo.split(":", 1)[1]))
                self._answer(200, reply.encode(), "text/plain")
                return
            with state.lock:
                state.posts.append(json.loads(body))
            self._answer(202, b"", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications?code=k%2By"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
