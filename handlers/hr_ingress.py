"""HR webhooks in: `POST /api/hr/events` (Standard Webhooks) and provider adapters; validate, enqueue, 202.

Anonymous at the Functions level: the webhook signature is the authentication. This path never
touches Graph (no msgraph import): it only verifies, validates and enqueues on ``hr-events``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import azure.functions as func

from shared.config import load_plan_for, load_settings
from shared.errors import WaveGuardError
from shared.hr.ingress import (
    IncomingRequest,
    IngressDeps,
    IngressResult,
    accept_bamboohr_webhook,
    accept_hr_webhook,
)
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem_json
from shared.names import ROUTE_HR_BAMBOOHR, ROUTE_HR_EVENTS
from shared.queues import get_queue_sender
from shared.state import build_state

bp = func.Blueprint()
logger = logging.getLogger(__name__)

# (environment fingerprint, deps): built once per process; rebuilt only if the environment
# changes, which happens when tests start several in-process hosts with different settings.
_deps: tuple[int, IngressDeps] | None = None
_deps_lock = threading.Lock()


@bp.function_name("hr_events")
@bp.route(route=ROUTE_HR_EVENTS, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def hr_events(req: func.HttpRequest) -> func.HttpResponse:
    """Canonical HR events behind Standard Webhooks signatures: 202 with the event id."""
    return _handle(req, accept_hr_webhook)


@bp.function_name("hr_bamboohr")
@bp.route(route=ROUTE_HR_BAMBOOHR, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def hr_bamboohr(req: func.HttpRequest) -> func.HttpResponse:
    """BambooHR field-based webhooks: 202 with one event id per employee entry."""
    return _handle(req, accept_bamboohr_webhook)


def _handle(req: func.HttpRequest, accept: Callable[..., IngressResult]) -> func.HttpResponse:
    try:
        deps = ingress_deps()
    except WaveGuardError as exc:
        # Misconfigured or storage unreachable: the sender retries later; nothing was accepted.
        logger.error("hr ingress cannot start: %s", exc.message)
        return func.HttpResponse(
            problem_json(503, "HR ingress is not available; retry later"),
            status_code=503,
            mimetype=PROBLEM_CONTENT_TYPE,
            headers={"Retry-After": "60"},
        )
    request = IncomingRequest(method=req.method, headers=dict(req.headers), body=req.get_body())
    result = accept(request, deps=deps)
    return func.HttpResponse(
        result.body_text(),
        status_code=result.status,
        mimetype=result.content_type,
        headers={"Cache-Control": "no-store", **result.headers},
    )


def ingress_deps() -> IngressDeps:
    """The process-wide dependencies (settings, plan, queue sender, dedupe store), built on first use.

    Raises:
        ConfigError: the environment or plan is invalid (not cached: a fixed config is picked up).
    """
    global _deps
    settings = load_settings()
    fingerprint = hash(frozenset(settings.environ.items()))
    with _deps_lock:
        if _deps is None or _deps[0] != fingerprint:
            plan = load_plan_for(settings)
            deps = IngressDeps(
                providers=plan.hr_providers,
                queue=get_queue_sender(settings),
                idempotency=build_state(settings).idempotency,
            )
            _deps = (fingerprint, deps)
        return _deps[1]
