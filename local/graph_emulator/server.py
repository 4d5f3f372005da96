"""HTTP plumbing: a threading HTTP/1.1 server that turns bytes into ``Request`` and back.

Keep-alive with exact Content-Length, and Nagle off: with Nagle on, a response written in two
segments waits for the client's delayed ACK (~40 ms); off, a call takes a few milliseconds.
"""

from __future__ import annotations

import sys
import threading
import uuid
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from local.graph_emulator.app import Emulator, EmulatorConfig
from local.graph_emulator.limits import RateLimitConfig
from local.graph_emulator.routing import Request, Response
from local.graph_emulator.seed import DemoTenant
from local.graph_emulator.store import TenantStore
from local.graph_emulator.throttle import WriteBudget

MAX_BODY_BYTES = 16 * 1024 * 1024


class GraphRequestHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the emulator, writes the answer; the connection stays open."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "GraphEmulator/1.0"
    sys_version = ""
    # idle keep-alive connections are dropped after this many seconds
    timeout = 30

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = self._to_request(body)
        response = self.server.emulator.handle(request)  # type: ignore[attr-defined]
        self._write(request, response)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413, "Request body too large")
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _to_request(self, body: bytes) -> Request:
        parts = urlsplit(self.path)
        request_id = str(uuid.uuid4())
        host = self.headers.get("Host") or "{}:{}".format(*self.listening_address())
        return Request(
            method=self.command.upper(),
            path=parts.path or "/",
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={key: value for key, value in self.headers.items()},
            body=body,
            request_id=request_id,
            client_request_id=self.headers.get("client-request-id") or request_id,
            origin=f"http://{host}",
        )

    def listening_address(self) -> tuple[str, int]:
        """The listening address, for requests that came without a Host header (HTTP/1.0)."""
        address = self.server.server_address
        return (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("127.0.0.1", 0)

    def _write(self, request: Request, response: Response) -> None:
        payload = response.encoded_body()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", request.request_id)
        self.send_header("client-request-id", request.client_request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and request.method != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the request log under /_emulator/requests is the record."""


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a client opens 20 at once
    request_queue_size = 128
    # a restarted emulator may reuse the port at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, GraphRequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # clients closing keep-alive connections are normal
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class EmulatorHandle:
    """A running emulator: its URLs, its state and how to stop it."""

    emulator: Emulator
    server: EmulatorServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Graph base URL to give msgraph-sdk, e.g. http://127.0.0.1:7072/v1.0."""
        return f"{self.origin}/v1.0"

    @property
    def beta_url(self) -> str:
        """The Graph beta base URL (every /v1.0 route plus the beta-only ones), e.g. .../beta."""
        return f"{self.origin}/beta"

    @property
    def admin_url(self) -> str:
        return f"{self.origin}/_emulator"

    @property
    def store(self) -> TenantStore:
        """The current tenant (a reset replaces it: read this property again afterwards)."""
        return self.emulator.store

    @property
    def demo(self) -> DemoTenant | None:
        """Facts about the seeded demo tenant; None for the empty seed or a snapshot."""
        return self.emulator.demo

    def reset(self, **fields: object) -> None:
        """Reset like ``POST /_emulator/reset`` with these JSON fields (seed, randomSeed, writeBudget ...)."""
        self.emulator.reset(self.emulator.startup_config.updated_from_json(fields))

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.emulator.outbound.stop()


def start_emulator(
    port: int | None = 0,
    seed: str = "demo",
    *,
    host: str = "127.0.0.1",
    random_seed: int = 42,
    write_budget: WriteBudget | None = None,
    snapshot: str | None = None,
    time_scale: float = 1.0,
    rate_limits: RateLimitConfig | None = None,
    extra_users: int = 0,
    permissions: frozenset[str] | None = None,
) -> EmulatorHandle:
    """Start an emulator in a background thread; port 0 or None picks a free port.

    ``permissions`` are the application permissions the app holds; None is what a default
    deployment grants (``infra/graph-permissions.json`` with ``infra/main.bicep``'s defaults).

    Raises:
        ValueError: an invalid seed, budget or snapshot.
        OSError: the port is taken.
    """
    config = EmulatorConfig(
        seed=seed,
        random_seed=random_seed,
        write_budget=write_budget or WriteBudget(),
        snapshot=snapshot,
        time_scale=time_scale,
        rate_limits=rate_limits or RateLimitConfig(),
        extra_users=extra_users,
    )
    if permissions is not None:
        config = replace(config, permissions=frozenset(permissions))
    emulator = Emulator(config)
    server = EmulatorServer((host, port or 0), emulator)
    bound_port = int(server.server_address[1])
    # a short poll interval makes stop() quick (the default 0.5 s adds up across test sessions)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"graph-emulator-{bound_port}",
        daemon=True,
    )
    thread.start()
    return EmulatorHandle(emulator=emulator, server=server, thread=thread, host=host, port=bound_port)
