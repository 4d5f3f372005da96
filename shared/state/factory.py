"""Build the three stores from Settings (Azure Tables) or in memory (unit tests, dry runs)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.config.settings import Settings
from shared.names import TABLE_AUDIT, TABLE_IDEMPOTENCY, TABLE_STATE
from shared.offload import Offload, direct, to_thread
from shared.state.aio import (
    AsyncAudit,
    AsyncAuditPort,
    AsyncIdempotency,
    AsyncIdempotencyPort,
    AsyncKeyValue,
    AsyncKeyValuePort,
)
from shared.state.audit import AuditLog
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY, IdempotencyStore
from shared.state.kv import KeyValueStore
from shared.state.memory import MemoryAuditLog, MemoryIdempotencyStore, MemoryKeyValueStore
from shared.state.ports import Clock, utc_now
from shared.state.tables import TableAuditLog, TableIdempotencyStore, TableKeyValueStore, Tables

__all__ = ["AsyncStores", "StateStores", "build_memory_state", "build_state"]


@dataclass(frozen=True, slots=True)
class AsyncStores:
    """The stores as code on the event loop sees them: every call awaited, none blocking."""

    idempotency: AsyncIdempotencyPort
    kv: AsyncKeyValuePort
    audit: AsyncAuditPort


@dataclass(frozen=True)
class StateStores:
    """Idempotency keys, key-value state and the audit log.

    The attributes are the synchronous stores (the CLI and tools); ``aio`` is the same stores for
    async code, each call offloaded inside the store (``offload``: a thread for Azure Tables,
    inline for the in-memory twins).
    """

    idempotency: IdempotencyStore
    kv: KeyValueStore
    audit: AuditLog
    offload: Offload = to_thread

    @functools.cached_property
    def aio(self) -> AsyncStores:
        """The async face of these stores (built once)."""
        return AsyncStores(
            idempotency=AsyncIdempotency(self.idempotency, self.offload),
            kv=AsyncKeyValue(self.kv, self.offload),
            audit=AsyncAudit(self.audit, self.offload),
        )


def build_state(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY,
    table_prefix: str = "",
) -> StateStores:
    """Table-backed stores from the storage settings; tables are created on first use.

    ``table_prefix`` (letters/digits) isolates test runs sharing one storage account.

    Raises:
        ConfigError: storage is not configured, or the prefix is not alphanumeric.
    """
    from azure.data.tables import TableServiceClient

    from shared.config.identity import storage_credential
    from shared.errors import ConfigError
    from shared.storage_transport import pooled_transport

    storage = settings.storage.require()
    if table_prefix and not table_prefix.isalnum():
        raise ConfigError(
            f"table_prefix must be letters and digits, got {table_prefix!r}", field="table_prefix"
        )
    # The SDK default retries 10 times with up to 120 s backoff; fail within seconds instead and
    # let the message come back through the queue's own retry.
    options: dict[str, Any] = {
        "retry_total": 3,
        "retry_backoff_factor": 0.5,
        "retry_backoff_max": 4,
        "transport": pooled_transport(connection_timeout=5, read_timeout=15),
    }
    if storage.connection_string:
        service = TableServiceClient.from_connection_string(storage.connection_string, **options)
    else:
        assert storage.table_service_uri is not None  # require() checked it
        credential = storage_credential(settings)
        service = TableServiceClient(endpoint=storage.table_service_uri, credential=credential, **options)
    tables = Tables(service)
    return StateStores(
        idempotency=TableIdempotencyStore(
            tables, table_prefix + TABLE_IDEMPOTENCY, clock=clock, in_progress_expiry=in_progress_expiry
        ),
        kv=TableKeyValueStore(tables, table_prefix + TABLE_STATE),
        audit=TableAuditLog(tables, table_prefix + TABLE_AUDIT, clock=clock),
    )


def build_memory_state(
    *, clock: Clock = utc_now, in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY
) -> StateStores:
    """In-memory stores with the same semantics (unit tests, `--dry-run` tooling)."""
    return StateStores(
        idempotency=MemoryIdempotencyStore(clock=clock, in_progress_expiry=in_progress_expiry),
        kv=MemoryKeyValueStore(),
        audit=MemoryAuditLog(clock=clock),
        offload=direct,
    )
