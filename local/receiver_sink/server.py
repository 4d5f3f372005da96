"""HTTP plumbing: the receiver paths and the ``/_sink`` admin API over a threading HTTP/1.1 server,
and ``start_sink`` for tests and benchmarks (in-process, on a daemon thread)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from local.receiver_sink.incidents import INCIDENT_STATUSES
from local.receiver_sink.limits import KINDS, RateRule
from local.receiver_sink.state import (
    MAX_EVENTS,
    AdminError,
    Delivery,
    FailRule,
    JsonObject,
    Reply,
    SinkState,
)

__all__ = ["MAX_BODY_BYTES", "SinkHandle", "SinkServer", "kind_of", "start_sink"]

MAX_BODY_BYTES: Final = 1024 * 1024
# A too-large body up to this size is read and dropped so the client sees the 413 on an intact
# connection; a larger one is left unread and the connection closed.
_DRAIN_LIMIT: Final = 64 * 1024 * 1024


def kind_of(path: str) -> str | None:
    """The receiver kind a path belongs to, or None."""
    if path == "/v2/enqueue":
        return "pagerduty"
    for kind in ("teams", "slack", "webhook"):
        if path == f"/{kind}" or path.startswith(f"/{kind}/"):
            return kind
    return None


class _BadRequest(Exception):
    """Request framing the sink cannot read (bad Content-Length or chunk size)."""


class SinkRequestHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the sink, writes the answer; the connection stays open."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "WaveGuardReceiverSink/1.0"
    sys_version = ""
    # idle keep-alive connections are dropped after this many seconds
    timeout = 30

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    @property
    def sink(self) -> SinkServer:
        return cast(SinkServer, self.server)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path or "/"
        try:
            body, size, too_large = self._read_body(self.sink.max_body_bytes)
        except _BadRequest as exc:
            self.close_connection = True
            self._write(Reply.json(400, {"error": {"field": "body", "message": str(exc)}}))
            return
        kind = kind_of(path)
        if kind is not None:
            if self.command != "POST":
                reply = Reply.json(405, {"error": {"message": "receivers accept POST"}}, {"Allow": "POST"})
            else:
                headers = {name.lower(): value for name, value in self.headers.items()}
                delivery = Delivery(kind, path, headers, body, size, too_large)
                reply = self.sink.state.handle(delivery)
        elif path == "/_sink" or path.startswith("/_sink/"):
            reply = admin(self.sink.state, self.command, path, parse_qs(parts.query), body, too_large)
        else:
            reply = Reply.json(404, {"error": {"message": f"no receiver at {path}"}})
        self._write(reply)

    def _read_body(self, limit: int) -> tuple[bytes, int, bool]:
        """(body, size, too large); a too-large body comes back empty."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest("Content-Length is not a number") from None
        if length < 0:
            raise _BadRequest("Content-Length is negative")
        if length <= limit:
            return (self.rfile.read(length) if length else b""), length, False
        if length <= _DRAIN_LIMIT:
            left = length
            while left > 0 and (chunk := self.rfile.read(min(left, 65536))):
                left -= len(chunk)
        else:
            self.close_connection = True
        return b"", length, True

    def _read_chunked(self, limit: int) -> tuple[bytes, int, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk_size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if chunk_size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return (b"".join(chunks), size, False) if size <= limit else (b"", size, True)
            if size + chunk_size > _DRAIN_LIMIT:
                self.close_connection = True
                return b"", size + chunk_size, True
            data = self.rfile.read(chunk_size)
            size += len(data)
            if size <= limit:
                chunks.append(data)
            else:
                chunks.clear()
            self.rfile.readline()

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.body:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: ``/_sink/events`` is the record."""


def _query_value(query: Mapping[str, list[str]], name: str, allowed: Sequence[str]) -> str | None:
    value = query.get(name, [None])[-1]
    if value is not None and value not in allowed:
        raise AdminError(name, f"{name} must be one of {', '.join(allowed)}")
    return value


def _since(query: Mapping[str, list[str]]) -> int:
    text = query.get("since", ["0"])[-1]
    try:
        since = int(text)
    except ValueError:
        raise AdminError("since", "since must be an event seq (a whole number >= 0)") from None
    if since < 0:
        raise AdminError("since", "since must be an event seq (a whole number >= 0)")
    return since


def admin(
    state: SinkState, method: str, path: str, query: Mapping[str, list[str]], body: bytes, too_large: bool
) -> Reply:
    """The ``/_sink`` API (see the package docstring)."""
    resource = path.removeprefix("/_sink").strip("/")
    routes: dict[str, tuple[str, ...]] = {
        "": ("GET",),
        "events": ("GET", "DELETE"),
        "incidents": ("GET",),
        "stats": ("GET",),
        "fail": ("GET", "POST", "DELETE"),
    }
    if resource not in routes:
        return Reply.json(404, {"error": {"message": f"no admin resource at {path}"}})
    if method not in routes[resource]:
        allowed = ", ".join(routes[resource])
        return Reply.json(405, {"error": {"message": f"{path} accepts {allowed}"}}, {"Allow": allowed})
    if too_large:
        return Reply.json(413, {"error": {"field": "body", "message": "request body too large"}})
    try:
        return _admin(state, method, resource, query, body)
    except AdminError as exc:
        return Reply.json(400, exc.to_json())


def _admin(
    state: SinkState, method: str, resource: str, query: Mapping[str, list[str]], body: bytes
) -> Reply:
    if resource == "":
        return Reply.json(200, {"status": "ok", "kinds": list(KINDS), "lastSeq": state.stats()["lastSeq"]})
    if resource == "events":
        if method == "DELETE":
            state.clear()
            return Reply(204)
        kind = _query_value(query, "kind", KINDS)
        return Reply.json(200, {"value": state.events(kind, _since(query))})
    if resource == "incidents":
        status = _query_value(query, "status", INCIDENT_STATUSES)
        return Reply.json(200, {"value": state.incidents(status)})
    if resource == "stats":
        return Reply.json(200, state.stats())
    # fail
    if method == "GET":
        return Reply.json(200, {"value": state.failures()})
    if method == "DELETE":
        state.end_failures(_query_value(query, "kind", KINDS))
        return Reply.json(200, {"value": state.failures()})
    try:
        value = json.loads(body) if body.strip() else None
    except ValueError:
        raise AdminError("body", "the body is not valid JSON") from None
    return Reply.json(200, {"value": state.fail(FailRule.from_json(value))})


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a client opens 20 at once
    request_queue_size = 128
    # a restarted sink may reuse the port at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SinkState, *, max_body_bytes: int) -> None:
        self.state = state
        self.max_body_bytes = max_body_bytes
        super().__init__(address, SinkRequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # clients closing keep-alive connections are normal
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class SinkHandle:
    """A running sink: its URLs, the same views as the admin API, and how to stop it."""

    state: SinkState
    server: SinkServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """The origin, e.g. http://127.0.0.1:7073."""
        return f"http://{self.host}:{self.port}"

    @property
    def pagerduty_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    @property
    def teams_url(self) -> str:
        return f"{self.url}/teams"

    @property
    def slack_url(self) -> str:
        return f"{self.url}/slack"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook"

    @property
    def events_url(self) -> str:
        return f"{self.url}/_sink/events"

    def events(self, kind: str | None = None, since: int = 0) -> list[JsonObject]:
        """Recorded deliveries, oldest first (as ``GET /_sink/events``)."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        return self.state.events(kind, since)

    def incidents(self, status: str | None = None) -> list[JsonObject]:
        """PagerDuty incidents, oldest first (as ``GET /_sink/incidents``)."""
        return self.state.incidents(status)

    def stats(self) -> JsonObject:
        """As ``GET /_sink/stats``."""
        return self.state.stats()

    def violations(self) -> list[JsonObject]:
        """Rate-limit violations (``stats()["violations"]``)."""
        return self.state.violations()

    def fail(
        self, status: int, seconds: float, kind: str | None = None, *, retry_after: int | None = None
    ) -> list[JsonObject]:
        """As ``POST /_sink/fail``; returns the active failures.

        Raises:
            ValueError: a bad status, seconds, kind or retry_after (an ``AdminError`` naming it).
        """
        fields: dict[str, Any] = {"status": status, "seconds": seconds, "kind": kind}
        if retry_after is not None:
            fields["retryAfter"] = retry_after
        return self.state.fail(FailRule.from_json(fields))

    def end_failures(self, kind: str | None = None) -> None:
        """As ``DELETE /_sink/fail``."""
        self.state.end_failures(kind)

    def clear(self) -> None:
        """As ``DELETE /_sink/events``: forget everything."""
        self.state.clear()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> SinkHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_sink(
    port: int | None = 0,
    *,
    host: str = "127.0.0.1",
    webhook_secrets: Sequence[str] = (),
    limits: Mapping[str, RateRule | None] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_events: int = MAX_EVENTS,
    on_event: Callable[[JsonObject], None] | None = None,
) -> SinkHandle:
    """Start a sink on a daemon thread; port 0 or None picks a free port.

    ``limits`` overrides rate rules per kind (None turns a kind's limit off).

    Raises:
        ValueError: an unknown kind in ``limits`` or a webhook secret that is not ``whsec_<base64>``.
        OSError: the port is taken.
    """
    unknown = sorted(set(limits or {}) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown receiver kind in limits: {', '.join(unknown)}")
    state = SinkState(rules=limits, webhook_secrets=webhook_secrets, max_events=max_events, on_event=on_event)
    server = SinkServer((host, port or 0), state, max_body_bytes=max_body_bytes)
    bound_port = int(server.server_address[1])
    # a short poll interval makes stop() quick
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"receiver-sink-{bound_port}",
        daemon=True,
    )
    thread.start()
    return SinkHandle(state=state, server=server, thread=thread, host=host, port=bound_port)
