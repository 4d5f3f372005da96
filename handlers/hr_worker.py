"""The `hr-events` queue worker: hires, updates and terminations, applied exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from handlers.queue_worker import run_queue_worker
from shared.names import HR_EVENTS

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """The `hr_worker` function over ``services``."""
    bp = func.Blueprint()

    @bp.queue_trigger(arg_name="msg", queue_name=HR_EVENTS, connection="AzureWebJobsStorage")
    async def hr_worker(msg: func.QueueMessage) -> None:
        """Handle one HR event; RetryableError propagates (host retries), PermanentError is settled."""
        # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
        from shared.onboarding.worker import ACTOR, hr_routes, settle

        await run_queue_worker(
            msg,
            services,
            queue=HR_EVENTS,
            actor=ACTOR,
            routes=lambda s: hr_routes(s.onboarding),
            settle=settle,
        )

    return bp
