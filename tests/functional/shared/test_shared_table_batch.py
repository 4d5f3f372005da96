"""insert_all against Azurite: all or none, the service's own errors (exists, missing table), and
the input it refuses; the audit log's transactions go through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient

from local.azurite import Azurite
from shared.config import Settings, StorageSettings
from shared.state import AuditEntry, build_state
from shared.state.table_batch import insert_all

pytestmark = pytest.mark.functional


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    name = f"batch{uuid.uuid4().hex[:10]}"
    client = service.create_table(name)
    yield client
    service.delete_table(name)


def _rows(partition: str, count: int, **extra: str) -> list[dict[str, str]]:
    return [{"PartitionKey": partition, "RowKey": f"r{n}", **extra} for n in range(count)]


def test_every_entity_is_stored_as_written(table: TableClient) -> None:
    # GIVEN three entities whose text needs JSON escaping
    rows = _rows("p1", 3, Reason='a "quoted" line\nand ünïcode ✓', Details='{"k":"v"}')
    # WHEN they are inserted in one transaction
    insert_all(table, rows)
    # THEN each reads back exactly
    for row in rows:
        stored = table.get_entity("p1", row["RowKey"])
        assert (stored["Reason"], stored["Details"]) == (row["Reason"], row["Details"])


def test_an_entity_that_exists_fails_the_whole_transaction_with_the_services_409(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "p2", "RowKey": "r1", "Reason": "first"})
    with pytest.raises(HttpResponseError) as caught:
        insert_all(table, _rows("p2", 3, Reason="second"))
    assert caught.value.status_code == 409
    assert getattr(caught.value, "error_code", None) == "EntityAlreadyExists"
    # nothing of it was stored: r0 and r2 are absent, r1 is the first one's
    assert [e["RowKey"] for e in table.query_entities("PartitionKey eq 'p2'")] == ["r1"]
    assert table.get_entity("p2", "r1")["Reason"] == "first"


def test_a_missing_table_is_the_services_table_not_found(azurite: Azurite) -> None:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    gone = service.get_table_client(f"gone{uuid.uuid4().hex[:10]}")
    with pytest.raises(HttpResponseError) as caught:
        insert_all(gone, _rows("p", 1))
    assert caught.value.status_code == 404
    assert getattr(caught.value, "error_code", None) == "TableNotFound"


def test_input_it_cannot_write_is_refused_and_typed_values_go_through_the_sdk(table: TableClient) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        insert_all(table, [])
    with pytest.raises(ValueError, match="1 to 100"):
        insert_all(table, [{"PartitionKey": "p", "RowKey": f"r{n}"} for n in range(101)])
    with pytest.raises(ValueError, match="one PartitionKey"):
        insert_all(table, [*_rows("a", 1), *_rows("b", 1)])
    with pytest.raises(ValueError, match="RowKey"):
        insert_all(table, [{"PartitionKey": "p", "Action": "a"}])
    assert list(table.list_entities()) == []
    # a typed value is written by the SDK's own serializer, and keeps its type
    insert_all(table, [{"PartitionKey": "p", "RowKey": "r", "Count": 3, "Note": None}])
    stored = table.get_entity("p", "r")
    assert stored["Count"] == 3
    assert "Note" not in stored


def test_the_audit_log_heals_a_deleted_table_and_skips_what_a_retry_finds_stored(azurite: Azurite) -> None:
    # GIVEN the audit log in Azure Tables, its table deleted under it after a first write
    prefix = f"t{uuid.uuid4().hex[:10]}"  # tables of its own: the session's Azurite is shared
    settings = Settings(storage=StorageSettings(connection_string=azurite.connection_string))
    state = build_state(settings, table_prefix=prefix)
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    first = [AuditEntry("onboarding", "tap.create", "u-1", "r", id=f"heal-{uuid.uuid4().hex}", at=at)]
    state.audit.append_once(first)
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    names = [t.name for t in service.list_tables() if t.name.startswith(prefix) and "audit" in t.name]
    assert len(names) == 1
    service.delete_table(names[0])
    # WHEN entries are written again (the table is created afresh), then retried with one more
    again = [AuditEntry("onboarding", "tap.deliver", "u-1", "r", id=f"heal-{uuid.uuid4().hex}", at=at)]
    state.audit.append_once(again)
    more = AuditEntry("onboarding", "wave.member.add", "u-1", "r", id=f"heal-{uuid.uuid4().hex}", at=at)
    state.audit.append_once([*again, more])
    # THEN each is stored once
    actions = sorted(e.action for e in state.audit.list(limit=1000) if e.target == "u-1")
    assert actions == ["tap.deliver", "wave.member.add"]


def test_a_days_entries_over_the_transaction_size_limit_are_written_in_several(azurite: Azurite) -> None:
    # GIVEN 100 entries whose details are near the limit and are escaped again inside the entity
    settings = Settings(storage=StorageSettings(connection_string=azurite.connection_string))
    state = build_state(settings, table_prefix=f"t{uuid.uuid4().hex[:10]}")
    at = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    details = {"note": '"' * 14_000}  # 28,000 characters as JSON; 56,000 bytes once in the entity
    entries = [
        AuditEntry("onboarding", "tap.create", f"u-{n}", "r", details=details, id=f"big-{n}", at=at)
        for n in range(100)
    ]
    # WHEN they are written together (about 5.6 MB on the wire: the service takes 4 MiB at most)
    state.audit.append_once(entries)
    # THEN every one is stored, with its details whole
    stored = state.audit.list(limit=1000)
    assert sorted(e.id or "" for e in stored) == sorted(f"big-{n}" for n in range(100))
    assert all(e.details == details for e in stored)
