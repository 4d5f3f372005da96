"""The risk timer: Identity Protection and the sign-in log polled, triaged and raised as alerts.

The schedule (``%WAVEGUARD_RISK_SCHEDULE%``) is how often the timer looks; the plan's
``risk.pollEverySeconds`` is how often a poll actually runs.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.services import ServicesProvider

RISK_SCHEDULE = "%WAVEGUARD_RISK_SCHEDULE%"


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`risk_timer` over ``services``."""
    bp = func.Blueprint()

    @bp.timer_trigger(arg_name="timer", schedule=RISK_SCHEDULE, run_on_startup=False)
    async def risk_timer(timer: func.TimerRequest) -> None:
        """Poll riskDetections, riskyUsers and signIns when due; raise what they are worth."""
        from shared.risk.poll import run_risk_poll
        from shared.risk.wiring import risk_deps

        ready = await services.aget(what="the risk timer")
        await run_risk_poll(risk_deps(ready), correlation_id=f"risk-{uuid.uuid4().hex}")

    return bp
