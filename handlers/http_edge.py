"""What every HTTP ingress does at the edge: its span, the request in, the services or a 503, the
answer out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import azure.functions as func
from opentelemetry.trace import Span, Status, StatusCode

from shared.errors import WaveGuardError
from shared.http_ingress import IncomingRequest, IngressResult
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem_json
from shared.telemetry import edge_span

if TYPE_CHECKING:
    from shared.services import Services, ServicesProvider

log = logging.getLogger(__name__)
# host.json extensions.http.routePrefix
ROUTE_PREFIX = "api"


async def traced(
    req: func.HttpRequest, route: str, handle: Callable[[], Awaitable[func.HttpResponse]]
) -> func.HttpResponse:
    """Run an async HTTP trigger inside its edge span (continuing the caller's ``traceparent``)."""
    with _edge(req, route) as current:
        return _finish(current, await handle())


def traced_sync(
    req: func.HttpRequest, route: str, handle: Callable[[], func.HttpResponse]
) -> func.HttpResponse:
    """``traced`` for a synchronous HTTP trigger."""
    with _edge(req, route) as current:
        return _finish(current, handle())


@contextmanager
def _edge(req: func.HttpRequest, route: str) -> Iterator[Span]:
    template = f"/{ROUTE_PREFIX}/{route}"
    headers = {"traceparent": value} if (value := req.headers.get("traceparent")) else {}
    attributes = {"http.request.method": req.method, "http.route": template, "faas.trigger": "http"}
    with edge_span(f"{req.method} {template}", headers, attributes) as current:
        yield current


def _finish(current: Span, response: func.HttpResponse) -> func.HttpResponse:
    current.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 500:  # a server span fails on 5xx only (4xx is the caller's)
        current.set_status(Status(StatusCode.ERROR))
    return response


def incoming(req: func.HttpRequest) -> IncomingRequest:
    """The Functions request as the ingress logic reads it."""
    return IncomingRequest(
        method=req.method, headers=dict(req.headers), body=req.get_body(), query=dict(req.params)
    )


async def services_or_503(services: ServicesProvider, what: str) -> Services | func.HttpResponse:
    """The services, or a 503 (Retry-After 60) when they cannot be built: nothing was accepted."""
    try:
        return await services.aget(what=what)
    except WaveGuardError as exc:  # misconfigured or storage unreachable: the sender retries later
        log.error("%s cannot start: %s", what, exc.message)
        return func.HttpResponse(
            problem_json(503, f"{what} is not available; retry later"),
            status_code=503,
            mimetype=PROBLEM_CONTENT_TYPE,
            headers={"Retry-After": "60"},
        )


def answer(result: IngressResult) -> func.HttpResponse:
    """The ingress logic's answer as a Functions response (never cached)."""
    return func.HttpResponse(
        result.body_text(),
        status_code=result.status,
        mimetype=result.content_type,
        headers={"Cache-Control": "no-store", **result.headers},
    )
