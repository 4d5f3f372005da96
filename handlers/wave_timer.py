"""The rollout schedule: a timer that evaluates wave gates, promotes or holds, and nudges."""

from __future__ import annotations

import logging
import uuid

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)

# NCRONTAB (six fields, seconds first) from the app setting, as the Functions host resolves
# %NAME% in binding properties; infra and local.settings.json set "0 */15 * * * *" (every 15 min).
WAVE_TIMER_SCHEDULE = "%WAVEGUARD_WAVE_SCHEDULE%"


@bp.timer_trigger(arg_name="timer", schedule=WAVE_TIMER_SCHEDULE, run_on_startup=False)
async def wave_timer(timer: func.TimerRequest) -> None:
    """Evaluate every wave once; failures are logged (retryable) or alerted (permanent)."""
    # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
    from shared.config import load_settings
    from shared.config.startup import build_or_retry
    from shared.graph import get_graph_client
    from shared.queues import get_queue_sender
    from shared.rollout.lifecycle import build_lifecycle_deps, membership_sync_for, run_timer_tick

    settings = build_or_retry(load_settings, what="the rollout timer")
    deps = build_or_retry(
        lambda: build_lifecycle_deps(
            settings, client=get_graph_client(settings), start_membership=membership_sync_for(settings)
        ),
        what="the rollout timer",
    )
    correlation_id = f"wave-timer-{uuid.uuid4().hex}"
    result = await run_timer_tick(deps, get_queue_sender(settings), correlation_id=correlation_id)
    for decision in result.decisions if result else []:
        log.info(
            "wave evaluated",
            extra={"wave": decision.wave, "action": decision.action, "applied": decision.applied,
                   "correlation_id": correlation_id},
        )  # fmt: skip
