"""`GET /api/report`: the rollout report as one self-contained HTML page (function key).

``?wave=NAME`` one wave only, ``?days=N`` the history window (1 to 366, default 90),
``?format=json`` the same content as JSON. A bad parameter answers 400 problem JSON naming it.
The report reads the state tables only: this path never loads the Graph client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING

import azure.functions as func

from handlers.http_edge import services_or_503, traced
from shared.errors import InvalidPayloadError, RetryableError, WaveGuardError
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem_json
from shared.names import ROUTE_REPORT

if TYPE_CHECKING:
    from shared.services import ServicesProvider

log = logging.getLogger(__name__)

# The rollout timer's schedule (an app setting): the report flags figures older than two periods.
WAVE_SCHEDULE_SETTING = "WAVEGUARD_WAVE_SCHEDULE"


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`report` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("report")
    @bp.route(route=ROUTE_REPORT, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
    async def report(req: func.HttpRequest) -> func.HttpResponse:
        """The rollout report: 200 HTML (or JSON), 400 for a bad parameter, 503 while storage is down."""
        return await traced(req, ROUTE_REPORT, lambda: _handle(req, services))

    return bp


def _problem(status: int, detail: str, **kwargs: object) -> func.HttpResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "30"
    body = problem_json(status, detail, **kwargs)
    return func.HttpResponse(body, status_code=status, mimetype=PROBLEM_CONTENT_TYPE, headers=headers)


async def _handle(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    ready = await services_or_503(services, "the rollout report")
    if isinstance(ready, func.HttpResponse):
        return ready
    from shared.report import (
        HTTP_CONTENT_SECURITY_POLICY,
        build_rollout_report,
        options_from_query,
        render_html,
        stale_after_for,
    )

    try:
        options = options_from_query(ready.plan, dict(req.params))
    except InvalidPayloadError as exc:
        return _problem(400, exc.message, errors=exc.errors)
    try:
        report = await build_rollout_report(
            ready.plan,
            ready.state,
            now=ready.clock(),
            options=options,
            stale_after=stale_after_for(os.environ.get(WAVE_SCHEDULE_SETTING)),
        )
    except RetryableError as exc:
        log.warning("rollout report not built: %s", exc.message)
        return _problem(503, "the state store is not available; retry later")
    except WaveGuardError as exc:  # a stored record WaveGuard cannot read: say which
        log.error("rollout report not built: %s", exc.message)
        return _problem(500, f"the rollout report could not be built: {exc.message}")
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        # The page links to nothing, but a URL holding ?code= must never leave in a Referer.
        "Referrer-Policy": "no-referrer",
    }
    if options.format == "json":
        body = json.dumps(report.to_dict(), separators=(",", ":"))
        return func.HttpResponse(body, status_code=200, mimetype="application/json", headers=headers)
    page = await asyncio.to_thread(render_html, report)  # pygal draws on a thread, not the event loop
    return func.HttpResponse(
        page,
        status_code=200,
        mimetype="text/html",
        charset="utf-8",
        headers={**headers, "Content-Security-Policy": HTTP_CONTENT_SECURITY_POLICY},
    )
