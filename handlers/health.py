"""`GET /api/health`: the status for anyone; `GET /api/health/details`: every check, with a key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import azure.functions as func

from handlers.http_edge import traced_sync
from shared.health import HealthReport, check_health_from_environment
from shared.names import ROUTE_HEALTH, ROUTE_HEALTH_DETAILS

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def _answer(report: HealthReport, body: dict[str, object]) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=503 if report.status == "unhealthy" else 200,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _public(report: HealthReport) -> func.HttpResponse:
    return _answer(report, report.to_public_dict())


def _details(report: HealthReport) -> func.HttpResponse:
    return _answer(report, report.to_dict())


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`health` and `health_details`: they check the settings themselves (they must answer when
    the services cannot be built, and say why)."""
    bp = func.Blueprint()

    @bp.function_name("health")
    @bp.route(route=ROUTE_HEALTH, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        """``{"status": "healthy"|"degraded"|"unhealthy"}``: 200, 200 or 503; nothing about the set-up."""
        return traced_sync(req, ROUTE_HEALTH, lambda: _public(check_health_from_environment()))

    @bp.function_name("health_details")
    @bp.route(route=ROUTE_HEALTH_DETAILS, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
    def health_details(req: func.HttpRequest) -> func.HttpResponse:
        """Every check with its detail and latency, and the settings at fault by name (function key)."""
        return traced_sync(req, ROUTE_HEALTH_DETAILS, lambda: _details(check_health_from_environment()))

    return bp
