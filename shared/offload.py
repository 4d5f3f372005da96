"""Running a blocking call from the event loop: on a thread (network I/O) or inline (in-memory twins).

The storage SDKs (Azure Tables, Storage queues) are synchronous. Their adapters for async code
(``shared.state.aio``, ``shared.queues.AsyncQueueSender``) take an ``Offload`` and run every call
through it, so no call site ever blocks the loop and none has to remember to offload.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Offload", "direct", "to_thread"]


class Offload(Protocol):
    """How a synchronous call is run from the event loop."""

    async def __call__[T](self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


async def to_thread[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on the default thread pool (for stores and queues that do network I/O)."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


async def direct[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` inline (for in-memory twins, which never block)."""
    return fn(*args, **kwargs)
