"""Composition root: telemetry, the app, its blueprints. Nothing else.

Nothing here validates the configuration: a bad app setting or plan must not stop the functions
from loading. Each function checks it at first use (HTTP answers 503, queue messages are retried)
and `GET /api/health/details` names what is wrong.
"""

from __future__ import annotations

import azure.functions as func

from handlers import health, hr_ingress, hr_worker, poison, wave_timer, wave_worker
from shared.config import load_telemetry_settings
from shared.telemetry import configure_telemetry

configure_telemetry(load_telemetry_settings())

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (health.bp, hr_ingress.bp, hr_worker.bp, poison.bp, wave_timer.bp, wave_worker.bp):
    app.register_functions(blueprint)
