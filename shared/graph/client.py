"""The single Graph client factory: credentials, middleware (Retry-After honoured), timeouts, caching.

msgraph is imported inside the functions only: building its models costs about a second, and
HTTP ingress modules import ``shared.graph`` without ever calling Graph.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx

from shared.config.settings import Settings
from shared.graph.errors import parse_retry_after, to_waveguard_error
from shared.tls import httpx_tls

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from kiota_abstractions.authentication import AuthenticationProvider
    from kiota_http.middleware.middleware import BaseMiddleware
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config import BreakGlass
    from shared.graph.guard import BreakGlassGuard, BreakGlassIds

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_WAIT_SECONDS",
    "GRAPH_SCOPE",
    "build_graph_client",
    "get_graph_client",
    "get_json",
    "graph_health",
    "guard_of",
    "install_guard",
    "request_json",
    "reset_graph_clients",
]

GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
DEFAULT_MAX_RETRIES: Final = 3
# Longest Retry-After we sleep through inside one invocation; longer waits go back to the queue
# as a RetryableError(retry_after=...) instead of holding the worker and its message lease.
DEFAULT_MAX_RETRY_WAIT_SECONDS: Final = 10.0
_CONNECT_TIMEOUT_SECONDS: Final = 5.0

log = logging.getLogger(__name__)


def build_graph_client(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    credential: TokenCredential | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT_SECONDS,
    break_glass: BreakGlass | None = None,
) -> GraphServiceClient:
    """A GraphServiceClient for ``settings.graph_base_url`` with WaveGuard's middleware and timeouts.

    Every request passes the break-glass guard (``shared.graph.guard``): ``break_glass`` names the
    accounts and exclusion group; by default they come from the plan at ``settings.config_path``
    when the first write is checked (an invalid plan refuses every write).

    Against a loopback emulator no Microsoft credential is used (anonymous, or ``credential``
    limited to that host). Otherwise a managed identity (``AZURE_CLIENT_ID`` for user-assigned)
    or the local developer chain gets tokens for Graph's host only. ``http_client`` lets tests
    use ``httpx.MockTransport`` with the SDK's real middleware on top.

    Raises:
        ValueError: ``max_retries`` is outside 0..10 or ``max_retry_wait`` is negative.
    """
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient

    if not 0 <= max_retries <= 10 or max_retry_wait < 0:
        raise ValueError("max_retries must be 0..10 and max_retry_wait non-negative")
    client = http_client or httpx.AsyncClient(verify=httpx_tls())
    client.timeout = _timeout(settings)
    _install_middleware(client, max_retries=max_retries, max_retry_wait=max_retry_wait)
    adapter = GraphRequestAdapter(_auth_provider(settings, credential), client)
    # Set before GraphServiceClient: its constructor only defaults an empty base_url.
    adapter.base_url = settings.graph_base_url
    graph = GraphServiceClient(request_adapter=adapter)
    install_guard(client, settings, graph, break_glass)
    return graph


def install_guard(
    http: httpx.AsyncClient, settings: Settings, graph: GraphServiceClient, break_glass: BreakGlass | None
) -> BreakGlassGuard:
    """Put the break-glass guard in front of every request ``http`` sends (an httpx request hook)."""
    from shared.graph.guard import BreakGlassGuard, resolve_break_glass_ids

    async def read(path: str) -> dict[str, Any] | None:
        return await get_json(graph, path)

    async def resolve() -> BreakGlassIds:
        section = break_glass
        if section is None:
            from shared.config import load_plan_for

            section = load_plan_for(settings).break_glass
        return await resolve_break_glass_ids(section, read)

    guard = BreakGlassGuard(resolve, get_json=read)
    http.event_hooks["request"] = [*http.event_hooks["request"], guard]
    return guard


def guard_of(graph: GraphServiceClient) -> BreakGlassGuard | None:
    """The guard installed on this client's HTTP pipeline (tests read its counters)."""
    from shared.graph.guard import BreakGlassGuard

    http = getattr(graph.request_adapter, "_http_client", None)
    hooks = http.event_hooks["request"] if isinstance(http, httpx.AsyncClient) else []
    return next((h for h in hooks if isinstance(h, BreakGlassGuard)), None)


async def get_json(graph: GraphServiceClient, path: str) -> dict[str, Any] | None:
    """GET ``path`` (relative to the base URL) through the client: parsed JSON, None on 404.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    return await request_json(graph, "GET", path, operation=f"GET {path.split('?')[0]}")


async def request_json(
    graph: GraphServiceClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    operation: str,
    headers: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """A raw JSON request through the client (auth, middleware and the break-glass guard included):
    the parsed answer ({} when empty), None on 404.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the request (never with the body,
            which may hold a secret).
    """
    import json

    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    from shared.errors import NotFoundError

    adapter = graph.request_adapter
    info = RequestInformation(Method[method])
    info.url = f"{str(adapter.base_url).rstrip('/')}{path}"
    info.headers.try_add("Accept", "application/json")
    for name, header in (headers or {}).items():
        info.headers.try_add(name, header)
    if body is not None:
        info.set_stream_content(json.dumps(body).encode(), "application/json")
    try:
        raw: Any = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
    except Exception as exc:
        error = to_waveguard_error(exc, operation=operation)
        if isinstance(error, NotFoundError):
            return None
        raise error from None
    value: Any = json.loads(raw) if isinstance(raw, bytes) and raw else {}
    return value if isinstance(value, dict) else {}


def _timeout(settings: Settings) -> httpx.Timeout:
    total = settings.graph_timeout_seconds
    return httpx.Timeout(total, connect=min(_CONNECT_TIMEOUT_SECONDS, total))


def _auth_provider(settings: Settings, credential: TokenCredential | None) -> AuthenticationProvider:
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )

    host = urlsplit(settings.graph_base_url).hostname or "graph.microsoft.com"
    if settings.graph_is_emulator and credential is None:
        return AnonymousAuthenticationProvider()
    if credential is None:
        from shared.config.identity import azure_credential

        credential = azure_credential(settings)
    # allowed_hosts: a token never leaves for another host (e.g. a nextLink pointing elsewhere).
    return AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])


def _install_middleware(client: httpx.AsyncClient, *, max_retries: int, max_retry_wait: float) -> None:
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import RetryHandler
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph.graph_request_adapter import options as msgraph_options
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler
    from msgraph_core.middleware.options import GraphTelemetryHandlerOption

    from shared.graph.tracing import graph_trace_handler

    middleware: list[BaseMiddleware] = [
        m
        for m in KiotaClientFactory.get_default_middleware(dict(msgraph_options))
        if type(m).__name__ not in _UNUSED_MIDDLEWARE
    ]
    # delay=0: kiota adds the option's delay to every backoff; Retry-After or backoff alone decide.
    retry_option = RetryHandlerOption(delay=0.0, max_retries=max_retries)
    retry = _retry_handler_class()(retry_option, max_wait=max_retry_wait)
    middleware = [retry if isinstance(m, RetryHandler) else m for m in middleware]
    telemetry_option = msgraph_options[GraphTelemetryHandlerOption.get_key()]
    assert isinstance(telemetry_option, GraphTelemetryHandlerOption)
    middleware.append(GraphTelemetryHandler(options=telemetry_option))
    # Outermost: one client span per call (retries included) and traceparent on every attempt.
    middleware.insert(0, graph_trace_handler())
    GraphClientFactory.create_with_custom_middleware(middleware, client=client)


# Kiota middleware that does nothing for WaveGuard yet costs every call a step and a span: the
# /me URL rewrite (app-only calls never use /me) and the header and body inspection hooks (no
# request asks for them). Redirects, retries, query-name decoding, the user agent and Graph's
# client-request-id stay.
_UNUSED_MIDDLEWARE: Final = frozenset(
    {"UrlReplaceHandler", "HeadersInspectionHandler", "BodyInspectionHandler"}
)

_handler_class: type[Any] | None = None


def _retry_handler_class() -> type[Any]:
    """kiota's RetryHandler, defined lazily (kiota_http imports are deferred like msgraph's)."""
    global _handler_class
    if _handler_class is not None:
        return _handler_class
    from kiota_http.middleware import RetryHandler
    from kiota_http.middleware.options import RetryHandlerOption

    class WaveGuardRetryHandler(RetryHandler):  # type: ignore[misc]
        """RetryHandler that reads fractional Retry-After, caps in-process waits, and never
        replays a POST that may have been applied (504)."""

        def __init__(self, options: RetryHandlerOption, *, max_wait: float) -> None:
            super().__init__(options)
            self.max_wait = max_wait

        def _parse_retry_after(self, retry_after: str) -> float | None:
            return parse_retry_after(retry_after)

        def get_delay_time(
            self, retry_count: int, response: httpx.Response | None = None, delay: float = 0.0
        ) -> float:
            wait = float(super().get_delay_time(retry_count, response, delay))
            # MAX_DELAY makes the handler return the response instead of sleeping.
            return wait if wait <= self.max_wait else RetryHandlerOption.MAX_DELAY

        def should_retry(
            self, request: httpx.Request, options: RetryHandlerOption, response: httpx.Response
        ) -> bool:
            if request.method.upper() == "POST" and response.status_code == 504:
                return False  # a gateway timeout may hide a write that happened (e.g. a TAP)
            return bool(super().should_retry(request, options, response))

    _handler_class = WaveGuardRetryHandler
    return _handler_class


_clients: dict[tuple[object, ...], tuple[weakref.ref[Any] | None, GraphServiceClient]] = {}
_clients_lock = threading.Lock()


def get_graph_client(settings: Settings) -> GraphServiceClient:
    """The process's Graph client for these settings, one per event loop (httpx pools are loop-bound).

    Raises:
        ValueError: see ``build_graph_client``.
    """
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    key = (id(loop), settings.graph_base_url, settings.graph_timeout_seconds, settings.azure_client_id)
    with _clients_lock:
        # Drop clients of closed-and-collected loops (each test gets a new loop).
        for stale in [k for k, (ref, _) in _clients.items() if ref is not None and ref() is None]:
            del _clients[stale]
        cached = _clients.get(key)
        if cached is not None and (cached[0] is None or cached[0]() is loop):
            return cached[1]
        client = build_graph_client(settings)
        _clients[key] = (weakref.ref(loop) if loop is not None else None, client)
        return client


def reset_graph_clients() -> None:
    """Forget cached clients (tests that switch settings)."""
    with _clients_lock:
        _clients.clear()


async def graph_health(client: GraphServiceClient, *, probe_seconds: float = 5.0) -> bool:
    """True when Graph answers ``GET /users?$top=1&$select=id`` within ``probe_seconds``.

    A raw request through the client's adapter (auth and middleware included) without building
    User models. Failures are logged (kind and status, never tokens) and return False.
    """
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    adapter = client.request_adapter
    info = RequestInformation(Method.GET)
    info.url = f"{str(adapter.base_url).rstrip('/')}/users?$top=1&$select=id"
    try:
        async with asyncio.timeout(probe_seconds if math.isfinite(probe_seconds) else None):
            await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
    except Exception as exc:  # a probe reports every failure as unhealthy
        error = to_waveguard_error(exc if not isinstance(exc, TimeoutError) else httpx.ReadTimeout("probe"))
        log.warning("graph health probe failed: %s", error, extra={"kind": error.kind})
        return False
    return True
