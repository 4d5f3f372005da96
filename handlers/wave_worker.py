"""The `wave-work` queue worker: membership sync chunks of a wave, resumable and applied once."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import azure.functions as func

from handlers.poison import record_worker_failure
from shared.names import WAVE_WORK

if TYPE_CHECKING:
    from shared.rollout.membership import SyncDeps

bp = func.Blueprint()

# (environment fingerprint, deps): one writer per process, so its pacing spans chunks.
_deps: tuple[int, SyncDeps] | None = None
_lock = threading.Lock()


def _dependencies() -> SyncDeps:
    # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
    from shared.config import load_settings
    from shared.rollout.membership import build_sync_deps

    global _deps
    settings = load_settings()
    fingerprint = hash(frozenset(settings.environ.items()))
    with _lock:
        if _deps is None or _deps[0] != fingerprint:
            _deps = (fingerprint, build_sync_deps(settings))
        return _deps[1]


@bp.queue_trigger(arg_name="msg", queue_name=WAVE_WORK, connection="AzureWebJobsStorage")
async def wave_worker(msg: func.QueueMessage) -> None:
    """Handle one wave-work message; RetryableError propagates (host retries), PermanentError is settled."""
    from shared.config.startup import build_or_retry
    from shared.rollout.membership import process_wave_work

    try:
        await process_wave_work(msg.get_body(), build_or_retry(_dependencies, what="the wave-work worker"))
    except Exception as exc:
        await asyncio.to_thread(record_worker_failure, WAVE_WORK, msg, exc)
        raise
