"""Every `<queue>-poison` queue: archive the message, raise `PoisonMessage`, let it go.

The workers call ``record_worker_failure`` when an invocation fails, so the archive can say why.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import azure.functions as func

from shared.names import ALL_QUEUES, poison

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.state import StateStores

bp = func.Blueprint()
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _stores(settings: Settings) -> StateStores:
    from shared.state import build_state

    return build_state(settings)


def _archive(msg: func.QueueMessage, queue: str) -> None:
    from shared.config import load_settings
    from shared.config.startup import build_or_retry
    from shared.poison import archive_poison
    from shared.queues import get_queue_sender

    settings = build_or_retry(load_settings, what="the poison archive")
    archive_poison(
        build_or_retry(lambda: _stores(settings), what="the poison archive"),
        get_queue_sender(settings),
        queue=queue,
        message_id=str(msg.id),
        body=msg.get_body().decode("utf-8", errors="replace"),
        dequeue_count=int(msg.dequeue_count or 0),
        now=lambda: datetime.now(UTC),
    )


def record_worker_failure(queue: str, msg: func.QueueMessage, error: BaseException) -> None:
    """Note why this delivery failed (best effort: the failure itself goes back to the host)."""
    from shared.config import load_settings
    from shared.poison import record_failure

    with contextlib.suppress(Exception):
        kv = _stores(load_settings()).kv
        body = msg.get_body().decode("utf-8", errors="replace")
        record_failure(kv, queue, body, error, dequeue_count=int(msg.dequeue_count or 0))


def _register(queue: str) -> None:
    name = f"{queue.replace('-', '_')}_poison"

    @bp.function_name(name)
    @bp.queue_trigger(arg_name="msg", queue_name=poison(queue), connection="AzureWebJobsStorage")
    def archive(msg: func.QueueMessage) -> None:
        _archive(msg, poison(queue))


for _queue in ALL_QUEUES:
    _register(_queue)
