"""Graph change notifications in: `POST /api/graph/notifications` and `POST /api/graph/lifecycle`.

Function-key authenticated (Graph sends the key in the URL as ``?code=``, it cannot send headers),
plus the subscription's ``clientState``. This path never touches Graph: it validates and enqueues
on ``group-changes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from handlers.http_edge import answer, incoming, services_or_503, traced
from shared.group_changes.notifications import Kind, NotificationDeps, accept_notifications
from shared.names import ROUTE_GRAPH_LIFECYCLE, ROUTE_GRAPH_NOTIFICATIONS

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`graph_notifications` and `graph_lifecycle` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("graph_notifications")
    @bp.route(route=ROUTE_GRAPH_NOTIFICATIONS, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
        """Change notifications on watched groups (and the subscription validation handshake)."""
        return await traced(req, ROUTE_GRAPH_NOTIFICATIONS, lambda: _handle(req, services, "change"))

    @bp.function_name("graph_lifecycle")
    @bp.route(route=ROUTE_GRAPH_LIFECYCLE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
        """Lifecycle notifications: reauthorizationRequired, subscriptionRemoved, missed."""
        return await traced(req, ROUTE_GRAPH_LIFECYCLE, lambda: _handle(req, services, "lifecycle"))

    return bp


async def _handle(req: func.HttpRequest, services: ServicesProvider, kind: Kind) -> func.HttpResponse:
    request = incoming(req)
    if "validationToken" in request.query:  # the handshake answers at once and enqueues nothing
        return answer(await accept_notifications(request, deps=NotificationDeps(_NoQueue(), None), kind=kind))
    ready = await services_or_503(services, "Graph notification ingress")
    if isinstance(ready, func.HttpResponse):
        return ready
    secret = ready.plan.subscriptions.client_state
    deps = NotificationDeps(ready.queues, secret.get_secret_value() if secret is not None else None)
    return answer(await accept_notifications(request, deps=deps, kind=kind))


class _NoQueue:
    async def send(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("the validation handshake enqueues nothing")

    async def send_raw(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("the validation handshake enqueues nothing")
