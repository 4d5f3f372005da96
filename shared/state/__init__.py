"""State: idempotency keys, key-value state (wave state, sync runs, records), the audit log.

Each store's base class holds the logic (claims, expiry, takeover, JSON, validation) and the
backends (``tables`` for Azure Tables, ``memory`` for tests) implement a few small storage methods.
``build_state(settings)`` gives the synchronous stores (the CLI and tools); ``stores.aio`` is the
same stores for code on the event loop, every call offloaded inside the store. A side effect that
must happen once goes through ``shared.state.once``::

    async with once(services.state.idempotency, f"tap:{envelope.id}", ttl=timedelta(days=7)) as run:
        if run.done:
            return run.result            # duplicate: the work was done before
        result = await do_the_work()     # an error releases the key; a crash lets it expire
        await run.complete(result)
"""

from __future__ import annotations

from shared.state.aio import AsyncAuditPort, AsyncIdempotencyPort, AsyncKeyValuePort
from shared.state.audit import AuditLog
from shared.state.errors import ConcurrencyError
from shared.state.factory import AsyncStores, StateStores, build_memory_state, build_state
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY, DEFAULT_TTL, IdempotencyStore
from shared.state.kv import KeyValueStore
from shared.state.ports import (
    AuditEntry,
    AuditPort,
    Claim,
    ClaimStatus,
    Clock,
    IdempotencyPort,
    KeyValuePort,
    Versioned,
    iso,
    parse_iso,
    utc_now,
)

__all__ = [
    "DEFAULT_IN_PROGRESS_EXPIRY",
    "DEFAULT_TTL",
    "AsyncAuditPort",
    "AsyncIdempotencyPort",
    "AsyncKeyValuePort",
    "AsyncStores",
    "AuditEntry",
    "AuditLog",
    "AuditPort",
    "Claim",
    "ClaimStatus",
    "Clock",
    "ConcurrencyError",
    "IdempotencyPort",
    "IdempotencyStore",
    "KeyValuePort",
    "KeyValueStore",
    "StateStores",
    "Versioned",
    "build_memory_state",
    "build_state",
    "iso",
    "parse_iso",
    "utc_now",
]
