"""The `hr-events` queue worker: hires, updates and terminations, applied exactly once."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import azure.functions as func

from shared.names import HR_EVENTS

if TYPE_CHECKING:
    from shared.onboarding import Deps

bp = func.Blueprint()

_deps: Deps | None = None
_lock = threading.Lock()


def _dependencies() -> Deps:
    # Built on first use, once per process: the plan, state stores and queue clients are reused.
    # Imported here so the app's HTTP ingress never loads the Graph client at start-up.
    from shared.config import load_settings
    from shared.onboarding import build_deps

    global _deps
    with _lock:
        if _deps is None:
            _deps = build_deps(load_settings())
        return _deps


@bp.queue_trigger(arg_name="msg", queue_name=HR_EVENTS, connection="AzureWebJobsStorage")
async def hr_worker(msg: func.QueueMessage) -> None:
    """Handle one HR event; RetryableError propagates (host retries), PermanentError is settled."""
    from shared.onboarding import process_hr_message

    await process_hr_message(msg.get_body(), _dependencies())
