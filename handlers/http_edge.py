"""What every HTTP ingress does at the edge: the request in, the services or a 503, the answer out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.errors import WaveGuardError
from shared.http_ingress import IncomingRequest, IngressResult
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem_json

if TYPE_CHECKING:
    from shared.services import Services, ServicesProvider

log = logging.getLogger(__name__)


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
