"""The `alerts` queue worker: route, group, silence and deliver every alert to its receivers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.queue_worker import queue_worker_blueprint
from shared.names import ALERTS

if TYPE_CHECKING:
    import azure.functions as func

    from shared.pipeline import QueueWorker
    from shared.services import ServicesProvider


def _alert_router_worker() -> QueueWorker:
    from shared.alerting.worker import ALERT_ROUTER_WORKER

    return ALERT_ROUTER_WORKER


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`alert_router`: one alert or one group flush per message."""
    return queue_worker_blueprint(services, name="alert_router", queue=ALERTS, worker=_alert_router_worker)
