"""The `wave-work` queue worker: membership sync chunks of a wave, resumable and applied once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.queue_worker import queue_worker_blueprint
from shared.names import WAVE_WORK

if TYPE_CHECKING:
    import azure.functions as func

    from shared.pipeline import QueueWorker
    from shared.services import ServicesProvider


def _membership_worker() -> QueueWorker:
    from shared.rollout.membership.worker import WAVE_WORK_WORKER

    return WAVE_WORK_WORKER


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`wave_worker`: one membership sync chunk per message, applied once (a dead worker's is resumed)."""
    return queue_worker_blueprint(services, name="wave_worker", queue=WAVE_WORK, worker=_membership_worker)
