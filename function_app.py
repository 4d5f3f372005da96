"""Composition root: telemetry, the services, the app and its blueprints. Nothing else.

Nothing here validates the configuration: a bad app setting or plan must not stop the functions
from loading. ``ServicesProvider`` builds the services (settings, plan, stores, queues, Graph) at
first use; until they can be built, HTTP answers 503 and queue messages are retried, and
`GET /api/health/details` names what is wrong.
"""

from __future__ import annotations

import os

import azure.functions as func

from handlers import (
    alert_router,
    azure_monitor,
    graph_notifications,
    group_timers,
    group_worker,
    health,
    helpdesk_ingress,
    hr_ingress,
    hr_worker,
    poison,
    report,
    risk_timer,
    wave_timer,
    wave_worker,
)
from shared.config import load_telemetry_settings
from shared.services import ServicesProvider
from shared.telemetry import configure_telemetry
from shared.warmup import start_warmup

configure_telemetry(load_telemetry_settings())

services = ServicesProvider()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for module in (
    health,
    hr_ingress,
    helpdesk_ingress,
    graph_notifications,
    azure_monitor,
    hr_worker,
    group_worker,
    poison,
    wave_timer,
    wave_worker,
    group_timers,
    risk_timer,
    alert_router,
    report,
):
    app.register_functions(module.blueprint(services))

# After indexing, on a thread of its own: the services built and Graph's models loaded, so the first
# webhook and the first worker invocation do not pay for them (WAVEGUARD_WARM_START=false: off).
start_warmup(services, os.environ)
