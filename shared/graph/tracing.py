"""One client span per Graph call, and the W3C ``traceparent`` that carries the trace to Graph.

The span is the outermost step of the client's middleware: a call retried by the retry handler
is one span (its attempts share one ``traceparent``). Kiota's own spans (about eleven per call)
are folded away by ``shared.telemetry``; this span replaces them.

Span names and attributes never hold personal data: the path is reduced to a template (ids,
UPNs and other keys become placeholders) and the query string is left out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.telemetry import inject_trace_headers, tracer

if TYPE_CHECKING:
    import httpx

__all__ = ["graph_trace_handler", "path_template"]

_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Graph's resource and function names: users, memberOf, $batch, microsoft.graph.delta()...
_NAME: Final = re.compile(r"^\$?[A-Za-z][A-Za-z0-9_.]*(?:\(\))?$")


def path_template(path: str) -> str:
    """``/v1.0/users/alice@contoso.com/memberOf`` → ``/v1.0/users/{key}/memberOf``.

    GUIDs become ``{id}``; any other segment that is not a plain resource name (a UPN, a
    key with quotes or parentheses, a number) becomes ``{key}``.
    """
    segments = []
    for segment in path.split("/"):
        if not segment or _NAME.match(segment):
            segments.append(segment)
        elif _GUID.match(segment):
            segments.append("{id}")
        else:
            segments.append("{key}")
    return "/".join(segments)


_handler_class: type[Any] | None = None


def graph_trace_handler() -> Any:
    """A new instance of the tracing middleware (kiota imports are deferred, like msgraph's)."""
    global _handler_class
    if _handler_class is None:
        _handler_class = _define()
    return _handler_class()


def _define() -> type[Any]:
    from kiota_http.middleware.middleware import BaseMiddleware

    class GraphTraceHandler(BaseMiddleware):  # type: ignore[misc]
        """A CLIENT span around the whole call (retries included) and ``traceparent`` on the wire."""

        async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
            template = path_template(request.url.path)
            attributes: dict[str, Any] = {
                "http.request.method": request.method,
                "server.address": request.url.host,
                "url.template": template,
            }
            if request.url.port is not None:
                attributes["server.port"] = request.url.port
            with tracer().start_as_current_span(
                f"{request.method} {template}",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=True,
                set_status_on_exception=True,
            ) as current:
                inject_trace_headers(request.headers)
                response: httpx.Response = await super().send(request, transport)
                if current.is_recording():
                    current.set_attribute("http.response.status_code", response.status_code)
                    request_id = response.headers.get("request-id")
                    if request_id:
                        current.set_attribute("graph.request_id", request_id)
                    if response.status_code >= 400:
                        current.set_status(Status(StatusCode.ERROR))
                        current.set_attribute("error.type", str(response.status_code))
                return response

    return GraphTraceHandler
