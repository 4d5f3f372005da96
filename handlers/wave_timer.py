"""The rollout schedule: a timer that evaluates wave gates, promotes or holds, and nudges; after each
tick it keeps the day's figures of every wave for the rollout report."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from datetime import datetime

    from shared.rollout.lifecycle.evaluate import EvaluationResult
    from shared.services import ServicesProvider
    from shared.state import AsyncKeyValuePort

log = logging.getLogger(__name__)

# NCRONTAB (six fields, seconds first) from the app setting, as the Functions host resolves
# %NAME% in binding properties; infra and local.settings.json set "0 */15 * * * *" (every 15 min).
WAVE_TIMER_SCHEDULE = "%WAVEGUARD_WAVE_SCHEDULE%"


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """The `wave_timer` function over ``services``."""
    bp = func.Blueprint()

    @bp.timer_trigger(arg_name="timer", schedule=WAVE_TIMER_SCHEDULE, run_on_startup=False)
    async def wave_timer(timer: func.TimerRequest) -> None:
        """Evaluate every wave once; failures are logged (retryable) or alerted (permanent)."""
        # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
        from shared.rollout.lifecycle import run_timer_tick

        ready = await services.aget(what="the rollout timer")
        correlation_id = f"wave-timer-{uuid.uuid4().hex}"
        result = await run_timer_tick(ready.lifecycle, ready.queues, correlation_id=correlation_id)
        await after_tick(ready.state.kv, result, now=ready.clock(), correlation_id=correlation_id)

    return bp


async def after_tick(
    kv: AsyncKeyValuePort, result: EvaluationResult | None, *, now: datetime, correlation_id: str
) -> None:
    """Log each wave's decision, then keep the day's figures for the rollout report: the logs come
    first, and the snapshot write never raises, so the report can cost the tick nothing."""
    from shared.report.snapshots import record_daily_snapshots

    for decision in result.decisions if result else []:
        log.info(
            "wave evaluated",
            extra={
                "wave": decision.wave,
                "action": decision.action,
                "applied": decision.applied,
                "correlation_id": correlation_id,
            },
        )
    await record_daily_snapshots(kv, result, now=now, correlation_id=correlation_id)
