"""HTTP triggers: route, authorize, build func.HttpRequest, invoke, send func.HttpResponse."""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions import _abc as azf_abc

from local.minihost.invoker import Invoker, new_invocation_id
from local.minihost.loader import FunctionSpec, HttpTrigger
from local.minihost.logs import fields, get_logger
from local.minihost.settings import MASTER_KEY_NAME

MAX_BODY_BYTES = 100 * 1024 * 1024  # Azure Functions rejects larger request bodies with 413
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
log = get_logger("http")


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    function_name: str = ""  # for the request log line; empty when no function ran
    invocation_id: str = ""


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent, e.g. "/api/items/1?x=2"
    headers: Mapping[str, str]  # lower-case names, repeated headers joined with ", "
    body: bytes
    base_url: str  # "http://127.0.0.1:7071"


class Router:
    """Finds the function for a method and path under the route prefix, ASP.NET precedence first."""

    def __init__(self, functions: Iterable[FunctionSpec], route_prefix: str) -> None:
        routes = [(spec, spec.trigger) for spec in functions if isinstance(spec.trigger, HttpTrigger)]
        self.routes = sorted(routes, key=lambda item: (item[1].route.precedence, item[1].route.template))
        self.prefix = route_prefix.strip("/")

    def resolve(self, method: str, path: str) -> tuple[FunctionSpec, dict[str, str]] | list[str] | None:
        """(function, route params); or the allowed methods when only the method is wrong; or None."""
        relative = self._strip_prefix(path)
        if relative is None:
            return None
        allowed: set[str] = set()
        for spec, trigger in self.routes:
            params = trigger.route.match(relative)
            if params is None:
                continue
            if trigger.methods is None or method in trigger.methods:
                return spec, params
            allowed.update(trigger.methods)
        return sorted(allowed) or None

    def _strip_prefix(self, path: str) -> str | None:
        path = path.lstrip("/")
        if not self.prefix:
            return path
        prefix = self.prefix.lower()
        lowered = path.lower()
        if lowered == prefix:
            return ""
        return path[len(prefix) + 1 :] if lowered.startswith(prefix + "/") else None


DEFAULT_READ_TIMEOUT_SECONDS = 10.0


class HttpFrontend:
    """The HTTP side of the host; `handle` is independent of sockets, `start`/`stop` run the server."""

    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        *,
        route_prefix: str,
        function_keys: Mapping[str, str],
        invoker: Invoker,
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ) -> None:
        self.router = Router(functions, route_prefix)
        # A client that stops sending (headers or body) is dropped after this long, so stalled
        # connections cannot pin one thread each; Azure's front end answers such a client 408.
        self.read_timeout = read_timeout
        self._keys = dict(function_keys)
        self._invoker = invoker
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def handle(self, request: Request) -> Response:
        """Route, authorize and invoke one request."""
        split = urlsplit(request.target)
        found = self.router.resolve(request.method, split.path)
        if found is None:
            return Response(404)
        if isinstance(found, list):
            return Response(405, [("Allow", ", ".join(found))])
        spec, route_params = found
        query = _query_params(split.query)
        assert isinstance(spec.trigger, HttpTrigger)
        if not self._authorized(spec.trigger.auth_level, query, request.headers):
            log.info("%s requires a key (%s); none valid supplied", split.path, spec.trigger.auth_level)
            return Response(401)
        http_request = func.HttpRequest(
            request.method,
            request.base_url + request.target,
            headers=dict(request.headers),
            params=query,
            route_params=route_params,
            body=request.body,
        )
        return self._invoke(spec, http_request)

    def _authorized(self, level: str, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        if level == "anonymous":
            return True
        supplied = headers.get(KEY_HEADER) or query.get(KEY_QUERY) or ""
        # ADMIN routes take the master key only; FUNCTION routes take any listed key (the master included).
        candidates = [self._keys.get(MASTER_KEY_NAME, "")] if level == "admin" else list(self._keys.values())
        return bool(supplied) and any(
            hmac.compare_digest(supplied.encode(), key.encode()) for key in candidates if key
        )

    def _invoke(self, spec: FunctionSpec, request: func.HttpRequest) -> Response:
        invocation_id = new_invocation_id()
        try:
            result = self._invoker.invoke(spec, request, invocation_id)
            response = _to_response(result)
        except Exception as exc:
            log.exception(
                "function %s failed: %s: %s",
                spec.name,
                type(exc).__name__,
                exc,
                extra=fields(spec.name, invocation_id),
            )
            body = {"error": "Internal Server Error", "function": spec.name, "invocationId": invocation_id}
            response = Response(500, [("Content-Type", "application/json")], json.dumps(body).encode())
        return replace(response, function_name=spec.name, invocation_id=invocation_id)

    @property
    def port(self) -> int:
        """The bound port (kept after stop, for messages and tests)."""
        if self._port is None:
            raise RuntimeError("HTTP server not started")
        return self._port

    def start(self, host: str, port: int) -> None:
        """Listen on host:port (0 = a free port) and serve on a background thread."""
        self._server = _Server((host, port), _Handler, frontend=self)
        self._port = int(self._server.server_address[1])
        # A short poll interval makes stop() quick; the idle cost is a wake-up every 100 ms.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="minihost-http", daemon=True
        )
        self._thread.start()

    def stop(self, grace: float) -> None:
        """Stop accepting, let running requests finish within `grace` seconds, close every connection."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stopping = True
        server.shutdown()
        if not server.drain(grace):
            log.warning("HTTP requests still running after %.1f s; closing their connections", grace)
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(grace)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops bursts of connections (data sent into an overflowing
    # accept queue is lost, and the client then waits for nothing).
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, frontend: Any
    ) -> None:
        super().__init__(address, handler)
        self.frontend: HttpFrontend = frontend
        self.stopping = False
        self._lock = threading.Condition()
        self._in_flight = 0
        self._connections: set[socket.socket] = set()

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def drain(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MiniHost/1.0"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        # StreamRequestHandler applies it to the socket; typeshed calls it a ClassVar, but it is read
        # per instance, and the timeout is per host
        self.timeout = self.server.frontend.read_timeout  # type: ignore[misc]
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is logged by _dispatch instead

    def _dispatch(self) -> None:
        started = time.perf_counter()
        self.server.begin()
        try:
            response = self._respond()
            self._log(response, (time.perf_counter() - started) * 1000)
            self._send(response)  # after the log line: a client holding its answer finds the line
        finally:
            self.server.end()

    def _log(self, response: Response, elapsed: float) -> None:
        path = urlsplit(self.path).path
        extra = {
            **fields(response.function_name, response.invocation_id),
            "http_method": self.command,
            "http_path": path,
            "http_status": response.status,
            "duration_ms": round(elapsed, 1),
        }
        log.info("%s %s %d %.1f ms", self.command, path, response.status, elapsed, extra=extra)

    def _respond(self) -> Response:
        if self.server.stopping:
            response = Response(503, [("Connection", "close")])
        else:
            try:
                body = self._read_body()
            except TimeoutError:
                response = Response(408, [("Connection", "close")])  # the body stalled
            except ValueError:
                response = Response(400, [("Connection", "close")])
            else:
                if body is None:
                    response = Response(413, [("Connection", "close")])
                else:
                    response = self.server.frontend.handle(self._request(body))
        if ("Connection", "close") in response.headers:
            self.close_connection = True  # an unread or unreadable body makes the connection unusable
        return response

    def _request(self, body: bytes) -> Request:
        headers: dict[str, str] = {}
        for name in self.headers:
            headers.setdefault(name.lower(), ", ".join(self.headers.get_all(name) or []))
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return Request(self.command, self.path, headers, body, f"http://{host}")

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds MAX_BODY_BYTES."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)  # ValueError: answered with 400
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: Response) -> None:
        no_body = self.command == "HEAD" or response.status in {204, 304} or response.status < 200
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            if not no_body or self.command == "HEAD":
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if not no_body:
                self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client went away; nothing left to tell it

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


def _query_params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        # ASP.NET hands repeated query keys to the worker as one comma-joined value.
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def _to_response(result: object) -> Response:
    if isinstance(result, azf_abc.HttpResponse):
        headers = list(result.headers.items())
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype = result.mimetype
            content_type = (
                f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            )
            headers.append(("Content-Type", content_type))
        return Response(int(result.status_code), headers, result.get_body() or b"")
    if isinstance(result, str):
        return Response(200, [("Content-Type", "text/plain; charset=utf-8")], result.encode())
    if result is None:
        return Response(204)
    raise TypeError(
        f"an HTTP function returned {type(result).__name__}; expected azure.functions.HttpResponse or str"
    )
