"""What every queue trigger does around its route table: services, the pipeline, the failure note."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.pipeline import Routes, Settle
    from shared.services import Services, ServicesProvider

log = logging.getLogger(__name__)


async def run_queue_worker(
    msg: func.QueueMessage,
    provider: ServicesProvider,
    *,
    queue: str,
    actor: str,
    routes: Callable[[Services], Routes],
    settle: Settle,
) -> None:
    """Run one message from ``queue`` through the pipeline with this worker's routes.

    ``actor`` names the worker in the audit log and as the source of its alerts.

    A failure that propagates (retryable or unexpected) is noted for the poison archive first,
    then re-raised so the host retries the message and finally moves it to ``<queue>-poison``.
    """
    from shared.pipeline import PipelineDeps, handle_envelope

    services: Services | None = None
    try:
        services = await provider.aget(what=f"the {queue} worker")
        deps = PipelineDeps(queue, actor, services.state, services.queues, services.clock)
        await handle_envelope(msg.get_body(), routes(services), deps, on_permanent=settle)
    except Exception as exc:
        if services is not None:
            await record_worker_failure(services, queue, msg, exc)
        raise


async def record_worker_failure(
    services: Services, queue: str, msg: func.QueueMessage, error: BaseException
) -> None:
    """Note why this delivery failed (best effort: the failure itself goes back to the host)."""
    from shared.poison import record_failure

    try:
        body = msg.get_body().decode("utf-8", errors="replace")
        await record_failure(services.state.kv, queue, body, error, dequeue_count=int(msg.dequeue_count or 0))
    except Exception as exc:  # the store may be what failed
        log.warning("worker failure not recorded: %s", type(exc).__name__)
