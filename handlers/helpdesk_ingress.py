"""Helpdesk webhooks in: `POST /api/helpdesk/tickets` (Standard Webhooks) and `POST /api/helpdesk/jira`.

Anonymous at the Functions level: the webhook signature is the authentication. This path never
touches Graph (no msgraph import): it verifies, validates and keeps the ticket with one conditional
write to the state table (its dependencies are built once per process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import azure.functions as func

from handlers.http_edge import answer, incoming, services_or_503, traced
from shared.helpdesk.ingress import HelpdeskDeps, accept_jira_webhook, accept_ticket_webhook
from shared.http_ingress import IncomingRequest, IngressResult
from shared.names import ROUTE_HELPDESK_JIRA, ROUTE_HELPDESK_TICKETS

if TYPE_CHECKING:
    from shared.services import ServicesProvider


class Accept(Protocol):
    """One source's webhook acceptor (``accept_ticket_webhook``, ``accept_jira_webhook``)."""

    async def __call__(self, request: IncomingRequest, *, deps: HelpdeskDeps) -> IngressResult: ...


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`helpdesk_tickets` and `helpdesk_jira` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("helpdesk_tickets")
    @bp.route(route=ROUTE_HELPDESK_TICKETS, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def helpdesk_tickets(req: func.HttpRequest) -> func.HttpResponse:
        """Canonical tickets behind Standard Webhooks signatures: 202 with what was kept."""
        return await traced(
            req, ROUTE_HELPDESK_TICKETS, lambda: _handle(req, services, accept_ticket_webhook)
        )

    @bp.function_name("helpdesk_jira")
    @bp.route(route=ROUTE_HELPDESK_JIRA, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def helpdesk_jira(req: func.HttpRequest) -> func.HttpResponse:
        """Jira issue webhooks (X-Hub-Signature): 202 with what was kept."""
        return await traced(req, ROUTE_HELPDESK_JIRA, lambda: _handle(req, services, accept_jira_webhook))

    return bp


async def _handle(req: func.HttpRequest, services: ServicesProvider, accept: Accept) -> func.HttpResponse:
    ready = await services_or_503(services, "helpdesk ingress")
    if isinstance(ready, func.HttpResponse):
        return ready
    return answer(await accept(incoming(req), deps=ready.helpdesk_ingress))
