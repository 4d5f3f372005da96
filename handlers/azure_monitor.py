"""Azure Monitor alerts in: `POST /api/alerts/azure-monitor` (common alert schema), function key.

An action group's webhook (metric, log search or Sentinel workspace alert rules) pages through
WaveGuard's routing. This path never touches Graph: it validates and enqueues on ``alerts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from handlers.http_edge import answer, incoming, services_or_503, traced
from shared.alerting.azure_monitor import AzureMonitorDeps, accept_azure_monitor_alert
from shared.names import ROUTE_ALERTS_AZURE_MONITOR

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`azure_monitor_alerts` over ``services``."""
    bp = func.Blueprint()

    @bp.function_name("azure_monitor_alerts")
    @bp.route(route=ROUTE_ALERTS_AZURE_MONITOR, methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    async def azure_monitor_alerts(req: func.HttpRequest) -> func.HttpResponse:
        """One Azure Monitor alert (Fired or Resolved): 202 once it is on the alerts queue."""
        return await traced(req, ROUTE_ALERTS_AZURE_MONITOR, lambda: _handle(req, services))

    return bp


async def _handle(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    ready = await services_or_503(services, "Azure Monitor alert ingress")
    if isinstance(ready, func.HttpResponse):
        return ready
    return answer(await accept_azure_monitor_alert(incoming(req), deps=AzureMonitorDeps(ready.queues)))
