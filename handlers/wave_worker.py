"""The `wave-work` queue worker: membership sync chunks of a wave, resumable and applied once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from handlers.queue_worker import run_queue_worker
from shared.names import WAVE_WORK

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """The `wave_worker` function over ``services``."""
    bp = func.Blueprint()

    @bp.queue_trigger(arg_name="msg", queue_name=WAVE_WORK, connection="AzureWebJobsStorage")
    async def wave_worker(msg: func.QueueMessage) -> None:
        """One wave-work message; RetryableError propagates (host retries), PermanentError is settled."""
        # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
        from shared.rollout.membership.worker import ACTOR, settle, wave_work_routes

        await run_queue_worker(
            msg,
            services,
            queue=WAVE_WORK,
            actor=ACTOR,
            routes=lambda s: wave_work_routes(s.membership),
            settle=settle,
        )

    return bp
