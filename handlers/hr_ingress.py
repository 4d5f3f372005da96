"""HR webhooks in: `POST /api/hr/events` (Standard Webhooks) and provider adapters; validate, enqueue, 202.

Anonymous at the Functions level: the webhook signature is the authentication. This path never
touches Graph (no msgraph import): it only verifies, validates and enqueues on ``hr-events`` (one
storage round trip per accepted event; its dependencies are built once per process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import azure.functions as func

from handlers.http_edge import answer, incoming, services_or_503, traced
from shared.hr.ingress import (
    IncomingRequest,
    IngressDeps,
    IngressResult,
    accept_bamboohr_webhook,
    accept_hr_webhook,
)
from shared.names import ROUTE_HR_BAMBOOHR, ROUTE_HR_EVENTS

if TYPE_CHECKING:
    from shared.services import ServicesProvider


class Accept(Protocol):
    """One provider's webhook acceptor (``accept_hr_webhook``, ``accept_bamboohr_webhook``)."""

    async def __call__(self, request: IncomingRequest, *, deps: IngressDeps) -> IngressResult: ...


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`hr_events` and `hr_bamboohr` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("hr_events")
    @bp.route(route=ROUTE_HR_EVENTS, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def hr_events(req: func.HttpRequest) -> func.HttpResponse:
        """Canonical HR events behind Standard Webhooks signatures: 202 with the event id."""
        return await traced(req, ROUTE_HR_EVENTS, lambda: _handle(req, services, accept_hr_webhook))

    @bp.function_name("hr_bamboohr")
    @bp.route(route=ROUTE_HR_BAMBOOHR, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def hr_bamboohr(req: func.HttpRequest) -> func.HttpResponse:
        """BambooHR field-based webhooks: 202 with one event id per employee entry."""
        return await traced(req, ROUTE_HR_BAMBOOHR, lambda: _handle(req, services, accept_bamboohr_webhook))

    return bp


async def _handle(req: func.HttpRequest, services: ServicesProvider, accept: Accept) -> func.HttpResponse:
    ready = await services_or_503(services, "HR ingress")
    if isinstance(ready, func.HttpResponse):
        return ready
    return answer(await accept(incoming(req), deps=ready.hr_ingress))
