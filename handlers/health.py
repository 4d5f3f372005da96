"""`GET /api/health`: is this instance able to work (config valid, storage and Graph reachable)?"""

from __future__ import annotations

import json

import azure.functions as func

from shared.config import load_settings
from shared.health import check_health
from shared.names import ROUTE_HEALTH

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route=ROUTE_HEALTH, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """200 with each check when healthy, 503 naming what failed otherwise."""
    report = check_health(load_settings())
    return func.HttpResponse(
        json.dumps(report.to_dict()),
        status_code=200 if report.healthy else 503,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
