"""Every `<queue>-poison` queue: archive the message, raise `PoisonMessage`, let it go.

The queue workers note why an invocation failed (``handlers.queue_worker``), so the archive can say why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.names import ALL_QUEUES, poison

if TYPE_CHECKING:
    from shared.services import ServicesProvider


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """One archiving function per poison queue (``hr_events_poison``, ...) over ``services``."""
    bp = func.Blueprint()
    for queue in ALL_QUEUES:
        _register(bp, services, queue)
    return bp


def _register(bp: func.Blueprint, services: ServicesProvider, queue: str) -> None:
    name = f"{queue.replace('-', '_')}_poison"

    @bp.function_name(name)
    @bp.queue_trigger(arg_name="msg", queue_name=poison(queue), connection="AzureWebJobsStorage")
    async def archive(msg: func.QueueMessage) -> None:
        from shared.poison import archive_poison

        # Storage only: a broken plan (which fails the workers) must not stop the archive.
        ready = await services.aget_storage(what="the poison archive")
        await archive_poison(
            ready.stores.aio,
            ready.queues,
            queue=poison(queue),
            message_id=str(msg.id),
            body=msg.get_body().decode("utf-8", errors="replace"),
            dequeue_count=int(msg.dequeue_count or 0),
            now=ready.clock,
        )
