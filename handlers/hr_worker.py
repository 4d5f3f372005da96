"""The `hr-events` queue worker: hires, updates and terminations, applied exactly once."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import azure.functions as func

from handlers.poison import record_worker_failure
from shared.names import HR_EVENTS

if TYPE_CHECKING:
    from shared.onboarding import Deps

bp = func.Blueprint()

# (environment fingerprint, deps): built once per process, rebuilt only when the environment
# changes (tests start several in-process hosts with different settings).
_deps: tuple[int, Deps] | None = None
_lock = threading.Lock()


def _dependencies() -> Deps:
    # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
    from shared.config import load_settings
    from shared.onboarding import build_deps

    global _deps
    settings = load_settings()
    fingerprint = hash(frozenset(settings.environ.items()))
    with _lock:
        if _deps is None or _deps[0] != fingerprint:
            _deps = (fingerprint, build_deps(settings))
        return _deps[1]


@bp.queue_trigger(arg_name="msg", queue_name=HR_EVENTS, connection="AzureWebJobsStorage")
async def hr_worker(msg: func.QueueMessage) -> None:
    """Handle one HR event; RetryableError propagates (host retries), PermanentError is settled."""
    from shared.config.startup import build_or_retry
    from shared.onboarding import process_hr_message

    try:
        await process_hr_message(msg.get_body(), build_or_retry(_dependencies, what="the hr-events worker"))
    except Exception as exc:
        await asyncio.to_thread(record_worker_failure, HR_EVENTS, msg, exc)
        raise
