"""State: idempotency keys, key-value state (watermarks, delta links, wave state), the audit log.

Handlers depend on the ports (``IdempotencyPort``, ``KeyValuePort``, ``AuditPort``); each store's
base class holds the logic (claims, expiry, takeover, JSON, validation) and the backends
(``tables`` for Azure Tables, ``memory`` for tests) implement a few small storage methods::

    stores = build_state(settings)
    claim = stores.idempotency.claim(f"tap:{envelope.id}", ttl=timedelta(days=7))
    if claim.completed:
        return claim.result            # duplicate: the work was done before
    if claim.in_progress:
        raise RetryableError("another worker is on it")
    try:
        result = do_the_work()
    except Exception:
        stores.idempotency.release(claim.key)
        raise
    stores.idempotency.complete(claim.key, result)
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
