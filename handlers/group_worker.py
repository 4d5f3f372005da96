"""The `group-changes` queue worker: read the group's delta, repair what must never be (break-glass)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.queue_worker import queue_worker_blueprint
from shared.names import GROUP_CHANGES

if TYPE_CHECKING:
    import azure.functions as func

    from shared.pipeline import QueueWorker
    from shared.services import ServicesProvider


def _group_changes_worker() -> QueueWorker:
    from shared.group_changes.worker import GROUP_CHANGES_WORKER

    return GROUP_CHANGES_WORKER


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`group_worker`: one batch of group change notifications per message."""
    return queue_worker_blueprint(
        services, name="group_worker", queue=GROUP_CHANGES, worker=_group_changes_worker
    )
