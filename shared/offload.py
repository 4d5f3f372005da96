"""Running a blocking call from the event loop: on a thread (network I/O) or inline (in-memory twins).

The storage SDKs (Azure Tables, Storage queues) are synchronous. Their adapters for async code
(``shared.state.aio``, ``shared.queues.AsyncQueueSender``) take an ``Offload`` and run every call
through it, so no call site ever blocks the loop and none has to remember to offload.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

__all__ = ["IO_THREADS", "Offload", "direct", "to_thread"]


# Storage calls wait on the network, not the CPU: the loop's default pool (cpu count + 4 threads,
# 6 on a 2-core instance) would let only 6 of a batch's 24 messages talk to storage at once.
def _io_threads(text: str | None, default: int = 32) -> int:
    """``WAVEGUARD_IO_THREADS`` as a count (1-256); anything else is the default, never an error:
    this runs while the app's functions are indexed, where a raise would stop every function."""
    try:
        value = int(text) if text is not None and text.strip() else default
    except ValueError:
        return default
    return value if 1 <= value <= 256 else default


IO_THREADS: Final = _io_threads(os.environ.get("WAVEGUARD_IO_THREADS"))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="waveguard-io")
    return _pool


class Offload(Protocol):
    """How a synchronous call is run from the event loop."""

    async def __call__[T](self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


async def to_thread[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on WaveGuard's I/O thread pool (for stores and queues that do network I/O), in a
    copy of the caller's context (its trace span and correlation id go along)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)


async def direct[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` inline (for in-memory twins, which never block)."""
    return fn(*args, **kwargs)
