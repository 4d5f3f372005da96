"""Graph change notifications in: `POST /api/graph/notifications` and `POST /api/graph/lifecycle`.

Function-key authenticated (Graph sends the key in the URL as ``?code=``, it cannot send headers),
plus the subscription's ``clientState``. This path never touches Graph: it validates and enqueues
on ``group-changes``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.errors import WaveGuardError
from shared.group_changes.notifications import Kind, NotificationDeps, accept_notifications
from shared.http_ingress import IncomingRequest
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem_json
from shared.names import ROUTE_GRAPH_LIFECYCLE, ROUTE_GRAPH_NOTIFICATIONS

if TYPE_CHECKING:
    from shared.services import ServicesProvider

log = logging.getLogger(__name__)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`graph_notifications` and `graph_lifecycle` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("graph_notifications")
    @bp.route(route=ROUTE_GRAPH_NOTIFICATIONS, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
        """Change notifications on watched groups (and the subscription validation handshake)."""
        return await _handle(req, services, "change")

    @bp.function_name("graph_lifecycle")
    @bp.route(route=ROUTE_GRAPH_LIFECYCLE, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
        """Lifecycle notifications: reauthorizationRequired, subscriptionRemoved, missed."""
        return await _handle(req, services, "lifecycle")

    return bp


async def _handle(req: func.HttpRequest, services: ServicesProvider, kind: Kind) -> func.HttpResponse:
    request = IncomingRequest(
        method=req.method, headers=dict(req.headers), body=req.get_body(), query=dict(req.params)
    )
    if "validationToken" not in request.query:
        try:
            ready = await services.aget(what="Graph notification ingress")
        except WaveGuardError as exc:
            log.error("graph notification ingress cannot start: %s", exc.message)
            return func.HttpResponse(
                problem_json(503, "notification ingress is not available; retry later"),
                status_code=503,
                mimetype=PROBLEM_CONTENT_TYPE,
                headers={"Retry-After": "60"},
            )
        secret = ready.plan.subscriptions.client_state
        deps = NotificationDeps(ready.queues, secret.get_secret_value() if secret is not None else None)
    else:
        deps = NotificationDeps(queue=_NoQueue(), client_state=None)  # the handshake enqueues nothing
    result = await accept_notifications(request, deps=deps, kind=kind)
    return func.HttpResponse(
        result.body_text(),
        status_code=result.status,
        mimetype=result.content_type,
        headers={
            "Cache-Control": "no-store",
            **{k: v for k, v in result.headers.items() if k != "Content-Type"},
        },
    )


class _NoQueue:
    async def send(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("the validation handshake enqueues nothing")

    async def send_raw(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("the validation handshake enqueues nothing")
