"""Storage that heals: a table or queue deleted under a running store, or a storage account that
restarts empty, costs one retry, never a PermanentError."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from local.azurite import Azurite, start_azurite
from shared.config import Settings, StorageSettings
from shared.envelope import Envelope
from shared.errors import PermanentError, RetryableError
from shared.names import TABLE_AUDIT, TABLE_IDEMPOTENCY, TABLE_STATE
from shared.queues import QueueSender, queue_service_client
from shared.state import AuditEntry, StateStores, build_state

pytestmark = pytest.mark.functional


def _stores(connection_string: str, prefix: str) -> StateStores:
    settings = Settings(storage=StorageSettings(connection_string=connection_string))
    return build_state(settings, table_prefix=prefix)


def _use_every_store(stores: StateStores, tag: str) -> None:
    assert stores.idempotency.claim(f"k-{tag}", ttl=timedelta(days=1)).acquired
    stores.idempotency.complete(f"k-{tag}", {"ok": tag})
    stores.kv.put("ns", f"key-{tag}", {"v": tag})
    assert stores.kv.get("ns", f"key-{tag}") is not None
    stores.audit.append(AuditEntry("test", "heal.check", tag, "storage healing"))


def _sender(connection_string: str) -> QueueSender:
    # The production client (brief retries), as get_queue_sender builds it.
    return QueueSender(queue_service_client(StorageSettings(connection_string=connection_string)))


@pytest.fixture
def prefix() -> str:
    return f"h{uuid.uuid4().hex[:10]}"


def test_deleted_tables_are_created_again_for_reads_and_writes(azurite: Azurite, prefix: str) -> None:
    # GIVEN stores that have created their tables
    stores = _stores(azurite.connection_string, prefix)
    _use_every_store(stores, "before")
    # WHEN someone deletes every table under them
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    for name in (TABLE_IDEMPOTENCY, TABLE_STATE, TABLE_AUDIT):
        service.delete_table(prefix + name)
    # THEN a read answers "nothing there" (the table is back), and writes succeed
    assert stores.kv.get("ns", "key-before") is None
    assert stores.idempotency.claim("k-before", ttl=timedelta(days=1)).acquired
    assert stores.audit.list(limit=10) == []
    _use_every_store(stores, "after")
    assert [e.target for e in stores.audit.list(limit=10)] == ["after"]


def test_each_write_kind_heals_on_its_own(azurite: Azurite, prefix: str) -> None:
    # Writes that are the first call after the deletion: conditional insert, upsert, append.
    stores = _stores(azurite.connection_string, prefix)
    _use_every_store(stores, "before")
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    for name in (TABLE_IDEMPOTENCY, TABLE_STATE, TABLE_AUDIT):
        service.delete_table(prefix + name)
    stores.kv.put("ns", "fresh", {"v": 1}, if_absent=True)
    stores.audit.append(AuditEntry("test", "heal.check", "t", "first write after the deletion"))
    stores.idempotency.complete("k-fresh", {"done": True})
    assert stores.kv.get("ns", "fresh") is not None
    assert stores.idempotency.claim("k-fresh", ttl=timedelta(days=1)).completed


def test_a_deleted_queue_is_created_again_on_send(azurite: Azurite) -> None:
    name = f"heal-{uuid.uuid4().hex[:8]}"
    sender = _sender(azurite.connection_string)
    sender.send(name, Envelope(type="test", payload={"n": 1}))
    QueueClient.from_connection_string(azurite.connection_string, name).delete_queue()
    sender.send(name, Envelope(type="test", payload={"n": 2}))
    props = QueueClient.from_connection_string(azurite.connection_string, name).get_queue_properties()
    assert props.approximate_message_count == 1


def _free_ports() -> tuple[int, int, int]:
    from local.ports import free_ports

    blob, queue, table = free_ports(3)
    return blob, queue, table


@pytest.fixture
def private_azurite(tmp_path: Path) -> Iterator[tuple[Azurite, tuple[int, int, int]]]:
    ports = _free_ports()
    az = start_azurite(blob_port=ports[0], queue_port=ports[1], table_port=ports[2])
    try:
        yield az, ports
    finally:
        az.stop()


def test_a_storage_account_restarting_empty_costs_retries_never_a_permanent_error(
    private_azurite: tuple[Azurite, tuple[int, int, int]], prefix: str
) -> None:
    az, ports = private_azurite
    stores = _stores(az.connection_string, prefix)
    sender = _sender(az.connection_string)
    _use_every_store(stores, "before")
    sender.send("heal-restart", Envelope(type="test", payload={}))
    # WHEN the account goes away: every operation fails retryably
    az.stop()
    with pytest.raises(RetryableError):
        stores.kv.put("ns", "while-down", {"v": 0})
    with pytest.raises(RetryableError):
        sender.send("heal-restart", Envelope(type="test", payload={}))
    # AND it comes back empty on the same endpoint (in-memory Azurite loses everything)
    back = start_azurite(blob_port=ports[0], queue_port=ports[1], table_port=ports[2])
    try:
        # THEN every store and the sender carry on without a PermanentError
        try:
            _use_every_store(stores, "after")
            sender.send("heal-restart", Envelope(type="test", payload={}))
        except PermanentError as exc:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"storage did not heal: {exc}")
        assert stores.kv.get("ns", "key-after") is not None
    finally:
        back.stop()
