"""A queue trigger for a worker, and what it does around the pipeline: services, the failure note."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.pipeline import QueueWorker
    from shared.services import ServicesProvider

log = logging.getLogger(__name__)


def queue_worker_blueprint(
    services: ServicesProvider, *, name: str, queue: str, worker: Callable[[], QueueWorker]
) -> func.Blueprint:
    """The function ``name`` on ``queue``; ``worker()`` is called at the first message, so a worker
    module (and Graph, which it imports) is not loaded when the app starts."""
    bp = func.Blueprint()

    @bp.function_name(name)
    @bp.queue_trigger(arg_name="msg", queue_name=queue, connection="AzureWebJobsStorage")
    async def run(msg: func.QueueMessage) -> None:
        await run_queue_worker(msg, services, queue=queue, worker=worker())

    return bp


async def run_queue_worker(
    msg: func.QueueMessage, provider: ServicesProvider, *, queue: str, worker: QueueWorker
) -> None:
    """Run one message from ``queue`` through the pipeline with the worker's routes.

    RetryableError (and anything unexpected) propagates, so the host retries the message and finally
    moves it to ``<queue>-poison``; the failure is noted first, for the poison archive. A
    PermanentError is settled (audited, alerted) by the pipeline.
    """
    from shared.pipeline import PipelineDeps, handle_envelope

    try:
        services = await provider.aget(what=f"the {queue} worker")
        deps = PipelineDeps(queue, worker.actor, services.state, services.queues, services.clock)
        await handle_envelope(msg.get_body(), worker.routes(services), deps, on_permanent=worker.settle)
    except Exception as exc:
        await record_worker_failure(provider, queue, msg, exc)
        raise


async def record_worker_failure(
    provider: ServicesProvider, queue: str, msg: func.QueueMessage, error: BaseException
) -> None:
    """Note why this delivery failed, for the poison archive. It needs storage only: a broken plan,
    which fails every message, is exactly when the note matters. Best effort: the failure itself
    goes back to the host."""
    from shared.poison import record_failure

    try:
        storage = await provider.aget_storage(what=f"the {queue} worker")
        body = msg.get_body().decode("utf-8", errors="replace")
        kv = storage.stores.aio.kv
        await record_failure(kv, queue, body, error, dequeue_count=int(msg.dequeue_count or 0))
    except Exception as exc:  # the store may be what failed
        log.warning("worker failure not recorded: %s", type(exc).__name__)
