"""``aio(x)``: the async face of a synchronous store or queue fake, for tests that set up or assert
synchronously but call code that awaits its stores (production code gets ``StateStores.aio``)."""

from __future__ import annotations

from typing import Any

from shared.offload import direct
from shared.state import AuditLog, IdempotencyStore, KeyValueStore, StateStores
from shared.state.aio import AsyncAudit, AsyncIdempotency, AsyncKeyValue


class AsyncSender:
    """A synchronous test sender (``send``/``send_raw`` returning ids) behind the async ``Sender`` port."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync

    async def send(self, queue_name: str, envelope: Any, *, delay: Any = None, ttl: Any = None) -> str:
        kwargs = {"delay": delay} if delay is not None else {}
        if ttl is not None:
            kwargs["ttl"] = ttl
        return str(self.sync.send(queue_name, envelope, **kwargs))

    async def send_raw(self, queue_name: str, text: str) -> str:
        return str(self.sync.send_raw(queue_name, text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sync, name)


def aio(thing: Any) -> Any:
    """``thing`` as async code expects it (unchanged when it already is)."""
    if isinstance(thing, StateStores):
        return thing.aio
    if isinstance(thing, KeyValueStore):
        return AsyncKeyValue(thing, direct)
    if isinstance(thing, IdempotencyStore):
        return AsyncIdempotency(thing, direct)
    if isinstance(thing, AuditLog):
        return AsyncAudit(thing, direct)
    send = getattr(thing, "send", None)
    if send is not None and not _is_async(send) and not isinstance(thing, AsyncSender):
        return AsyncSender(thing)
    return thing


def _is_async(method: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(method)
