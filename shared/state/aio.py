"""The async face of the state stores: what code running on the event loop uses.

The Azure Tables SDK is synchronous; a blocking call on the worker's event loop would stall every
other invocation sharing it (a timer tick and a queue message, say). So the stores offload inside
themselves: each method of these adapters runs the synchronous store on a worker thread, and call
sites simply ``await stores.kv.get(...)``. The in-memory twins are called directly (they never
block), which keeps unit tests deterministic.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.offload import Offload, to_thread
from shared.state.ports import AuditEntry, AuditPort, Claim, IdempotencyPort, KeyValuePort, Versioned

__all__ = [
    "AsyncAudit",
    "AsyncAuditPort",
    "AsyncIdempotency",
    "AsyncIdempotencyPort",
    "AsyncKeyValue",
    "AsyncKeyValuePort",
]


class AsyncIdempotencyPort(Protocol):
    """Exactly-once effects on top of at-least-once delivery (see ``shared.state.once``)."""

    async def claim(self, key: str, *, ttl: timedelta, in_progress_expiry: timedelta | None = None) -> Claim:
        """Try to become the one caller doing the work for ``key``."""
        ...

    async def complete(
        self,
        key: str,
        result: Mapping[str, Any] | None = None,
        *,
        ttl: timedelta | None = None,
        etag: str | None = None,
    ) -> None:
        """Record that the work for ``key`` is done, with a small JSON result (over the holder's
        version of the claim when ``etag`` is given)."""
        ...

    async def checkpoint(self, key: str, progress: Mapping[str, Any], *, etag: str) -> str:
        """Store the holder's progress on its claim; the claim's new version."""
        ...

    async def release(
        self, key: str, *, etag: str | None = None, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Give up an in-progress claim after a failure so a retry can proceed (keeping progress)."""
        ...


class AsyncKeyValuePort(Protocol):
    """Small JSON values (watermarks, delta links, wave state) with optimistic concurrency."""

    async def get(self, namespace: str, key: str) -> Versioned | None:
        """The value and its ETag, or None when absent."""
        ...

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Versioned]:
        """The values of those ``keys`` that exist (one read where the backend allows)."""
        ...

    async def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Store ``value``; returns the new ETag."""
        ...

    async def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        """Remove the value (absent is fine)."""
        ...

    async def values(self, namespace: str, *, limit: int = 1000) -> builtins.list[Any]:
        """Up to ``limit`` values stored in ``namespace``."""
        ...

    async def items(
        self, namespace: str, *, start: str | None = None, stop: str | None = None, limit: int = 1000
    ) -> builtins.list[tuple[str, Any]]:
        """Up to ``limit`` (key, value) pairs of ``namespace`` with ``start <= key < stop``, in key
        order, selected by the store (a range query in Azure Tables)."""
        ...


class AsyncAuditPort(Protocol):
    """Append-only audit trail of every write WaveGuard makes."""

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Store ``entry``; returns it with ``at`` and ``id`` filled in."""
        ...

    async def append_once(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditEntry]:
        """Store ``entries`` (each with its own ``id`` and ``at``) together, at most once."""
        ...

    async def list(self, *, since: datetime | None = None, limit: int = 100) -> builtins.list[AuditEntry]:
        """Entries newest first, at or after ``since``, at most ``limit``."""
        ...

    async def list_actions(
        self,
        actions: Sequence[str],
        *,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        """Entries of those ``actions`` (and that ``target``), newest first, at or after ``since``, at
        most ``limit``; selected by the store, so other entries never crowd them out."""
        ...


class AsyncIdempotency:
    """``IdempotencyPort`` with every call offloaded; the same errors as the synchronous store."""

    def __init__(self, store: IdempotencyPort, offload: Offload = to_thread) -> None:
        self.sync = store
        self._offload = offload

    async def claim(self, key: str, *, ttl: timedelta, in_progress_expiry: timedelta | None = None) -> Claim:
        return await self._offload(self.sync.claim, key, ttl=ttl, in_progress_expiry=in_progress_expiry)

    async def complete(
        self,
        key: str,
        result: Mapping[str, Any] | None = None,
        *,
        ttl: timedelta | None = None,
        etag: str | None = None,
    ) -> None:
        await self._offload(self.sync.complete, key, result, ttl=ttl, etag=etag)

    async def checkpoint(self, key: str, progress: Mapping[str, Any], *, etag: str) -> str:
        return await self._offload(self.sync.checkpoint, key, progress, etag=etag)

    async def release(
        self, key: str, *, etag: str | None = None, progress: Mapping[str, Any] | None = None
    ) -> None:
        await self._offload(self.sync.release, key, etag=etag, progress=progress)


class AsyncKeyValue:
    """``KeyValuePort`` with every call offloaded; the same errors as the synchronous store."""

    def __init__(self, store: KeyValuePort, offload: Offload = to_thread) -> None:
        self.sync = store
        self._offload = offload

    async def get(self, namespace: str, key: str) -> Versioned | None:
        return await self._offload(self.sync.get, namespace, key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Versioned]:
        return await self._offload(self.sync.get_many, namespace, keys)

    async def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        return await self._offload(
            self.sync.put, namespace, key, value, if_match=if_match, if_absent=if_absent
        )

    async def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        await self._offload(self.sync.delete, namespace, key, if_match=if_match)

    async def values(self, namespace: str, *, limit: int = 1000) -> builtins.list[Any]:
        return await self._offload(self.sync.values, namespace, limit=limit)

    async def items(
        self, namespace: str, *, start: str | None = None, stop: str | None = None, limit: int = 1000
    ) -> builtins.list[tuple[str, Any]]:
        return await self._offload(self.sync.items, namespace, start=start, stop=stop, limit=limit)


class AsyncAudit:
    """``AuditPort`` with every call offloaded; the same errors as the synchronous store."""

    def __init__(self, store: AuditPort, offload: Offload = to_thread) -> None:
        self.sync = store
        self._offload = offload

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return await self._offload(self.sync.append, entry)

    async def append_once(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditEntry]:
        return await self._offload(self.sync.append_once, entries)

    async def list(self, *, since: datetime | None = None, limit: int = 100) -> builtins.list[AuditEntry]:
        return await self._offload(self.sync.list, since=since, limit=limit)

    async def list_actions(
        self,
        actions: Sequence[str],
        *,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        return await self._offload(self.sync.list_actions, actions, target=target, since=since, limit=limit)
