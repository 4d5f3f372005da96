"""The `hr-events` queue worker: hires, updates and terminations, applied exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.queue_worker import queue_worker_blueprint
from shared.names import HR_EVENTS

if TYPE_CHECKING:
    import azure.functions as func

    from shared.pipeline import QueueWorker
    from shared.services import ServicesProvider


def _hr_worker() -> QueueWorker:
    from shared.onboarding.worker import HR_WORKER

    return HR_WORKER


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`hr_worker`: one HR event per message; retryable errors return it to the queue, others are settled."""
    return queue_worker_blueprint(services, name="hr_worker", queue=HR_EVENTS, worker=_hr_worker)
