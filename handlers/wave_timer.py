"""The rollout schedule: a timer that evaluates wave gates, promotes or holds, and nudges."""

from __future__ import annotations

import logging
import uuid

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)

# Every 15 minutes (NCRONTAB, six fields: seconds first).
WAVE_TIMER_SCHEDULE = "0 */15 * * * *"


@bp.timer_trigger(arg_name="timer", schedule=WAVE_TIMER_SCHEDULE, run_on_startup=False)
async def wave_timer(timer: func.TimerRequest) -> None:
    """Evaluate every wave once; a failure is logged and the next tick tries again."""
    # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
    from shared.config import load_settings
    from shared.graph import get_graph_client
    from shared.rollout.lifecycle import build_lifecycle_deps, evaluate_waves, membership_sync_for

    settings = load_settings()
    deps = build_lifecycle_deps(
        settings, client=get_graph_client(settings), start_membership=membership_sync_for(settings)
    )
    correlation_id = f"wave-timer-{uuid.uuid4().hex}"
    result = await evaluate_waves(deps, correlation_id=correlation_id)
    for decision in result.decisions:
        log.info(
            "wave evaluated",
            extra={"wave": decision.wave, "action": decision.action, "applied": decision.applied,
                   "correlation_id": correlation_id},
        )  # fmt: skip
