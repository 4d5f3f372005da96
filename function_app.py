"""Composition root: telemetry, the app, its blueprints. Nothing else."""

from __future__ import annotations

import azure.functions as func

from handlers import health, hr_ingress, hr_worker, wave_timer, wave_worker
from shared.config import load_settings
from shared.telemetry import configure_telemetry

configure_telemetry(load_settings())

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (health.bp, hr_ingress.bp, hr_worker.bp, wave_timer.bp, wave_worker.bp):
    app.register_functions(blueprint)
