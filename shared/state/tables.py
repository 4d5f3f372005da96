"""Azure Tables backends: conditional writes with ETags, tables created on first use, errors mapped."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.errors import PermanentError, RetryableError, status_code_of, storage_error
from shared.state.audit import AuditLog
from shared.state.errors import WriteConflict
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY, IdempotencyRecord, IdempotencyStore
from shared.state.kv import KeyValueStore
from shared.state.ports import AuditEntry, Clock, utc_now
from shared.state.table_batch import insert_all

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

__all__ = [
    "TableAuditLog",
    "TableIdempotencyStore",
    "TableKeyValueStore",
    "TableMissing",
    "Tables",
    "is_hashed_key",
    "key_of_table_key",
    "table_key",
]

_MAX_KEY_CHARS: Final = 1024
# Characters kept as they are in keys; everything else (incl. / \ # ? ' % and controls) is escaped.
_PLAIN = re.compile(r"[A-Za-z0-9\-_.:@=+,;!$&*()]")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_REVERSE_BASE: Final = 10**18
_LAST_DAY: Final = 99991231


def table_key(text: str) -> str:
    """A PartitionKey/RowKey for ``text``: reversible ``~XX`` escaping, hashed if over 1 KiB.

    Table keys forbid ``/ \\ # ?`` and control characters, and ``%`` breaks point operations.
    """
    escaped = "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in text
    )
    if len(escaped) <= _MAX_KEY_CHARS:
        return escaped
    return _HASHED + hashlib.sha256(text.encode()).hexdigest()


_HASHED: Final = "sha256~"
_ESCAPES = re.compile(r"(?:~[0-9A-F]{2})+")


def is_hashed_key(row: str) -> bool:
    """True for a ``table_key`` that is a hash (its text cannot be read back). An escaped key never
    holds a plain ``~``, so nothing else starts this way."""
    return row.startswith(_HASHED)


def key_of_table_key(row: str) -> str | None:
    """The text ``table_key`` escaped into ``row``, or None when ``row`` is a hash."""
    if is_hashed_key(row):
        return None
    return _ESCAPES.sub(lambda m: bytes.fromhex(m.group().replace("~", "")).decode(), row)


class Tables:
    """One TableServiceClient and the tables it has made sure exist (thread-safe)."""

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._ready: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> TableClient:
        """The client for table ``name``, creating the table on first use.

        Raises:
            RetryableError: storage is unreachable or failing.
            PermanentError: storage refused the request (e.g. authorisation).
        """
        with self._lock:
            if name not in self._ready:
                with storage_errors(f"create table {name}"):
                    self._ready[name] = self._service.create_table_if_not_exists(name)
            return self._ready[name]

    def forget(self, name: str) -> None:
        """Forget that ``name`` exists (it was deleted under us); the next use creates it again."""
        with self._lock:
            self._ready.pop(name, None)

    def run[T](
        self, name: str, operation: str, call: Callable[[TableClient], T], *, conflicts: bool = False
    ) -> T:
        """``call(client)`` under ``storage_errors``; a table that vanished (deleted, or a storage
        account that restarted empty) is created again and the call retried once.

        Raises:
            TableMissing: the table was still missing after it was created again (retryable).
            WriteConflict: with ``conflicts``, a conditional write lost.
            RetryableError / PermanentError: as ``storage_errors`` maps them.
        """
        try:
            with storage_errors(operation, conflicts=conflicts):
                return call(self.client(name))
        except TableMissing:
            self.forget(name)
        with storage_errors(operation, conflicts=conflicts):
            return call(self.client(name))


class TableMissing(RetryableError):
    """The table does not exist (deleted, or the storage account restarted empty); it is
    created again on the next use."""


@contextmanager
def storage_errors(operation: str, *, conflicts: bool = False) -> Iterator[None]:
    """Map azure-core errors to ours; a missing table is ``TableMissing`` (never a conflict or an
    absent key); with ``conflicts``, other 404/409/412 become ``WriteConflict``.

    Raises:
        WriteConflict: a conditional write lost (only with ``conflicts=True``).
        TableMissing: the table does not exist.
        RetryableError: transport failure, throttling, 5xx.
        PermanentError: any other 4xx.
    """
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        if _table_missing(exc):
            raise TableMissing(
                f"table missing during {operation}; it is created again", operation=operation
            ) from exc
        status = status_code_of(exc)
        if conflicts and status in (404, 409, 412):
            raise WriteConflict(operation) from exc
        raise storage_error(exc, operation=operation) from exc


def _table_missing(exc: Exception) -> bool:
    # A deleted table is an outage to heal (it is created again), not an absent key.
    # create_entity's error carries no error_code, only the service's JSON body: read both.
    if getattr(exc, "error_code", None) == "TableNotFound":
        return True
    return status_code_of(exc) == 404 and '"code":"TableNotFound"' in str(exc).replace(" ", "")


def _absent_as_none[T](call: Callable[[], T]) -> T | None:
    """``call()``, or None when the entity is absent (a missing table still raises)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return call()
    except ResourceNotFoundError as exc:
        if _table_missing(exc):
            raise
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _etag(metadata: Any) -> str:
    return str(metadata["etag"])


class TableIdempotencyStore(IdempotencyStore):
    """Idempotency records in table ``wgidempotency``; keys spread over 256 partitions."""

    def __init__(
        self,
        tables: Tables,
        table_name: str,
        *,
        clock: Clock = utc_now,
        in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY,
    ) -> None:
        super().__init__(clock=clock, in_progress_expiry=in_progress_expiry)
        self._tables = tables
        self._name = table_name

    def _entity(self, record: IdempotencyRecord) -> dict[str, Any]:
        return {
            "PartitionKey": hashlib.sha256(record.key.encode()).hexdigest()[:2],
            "RowKey": table_key(record.key),
            "Key": record.key,
            "Status": record.status,
            "StartedAt": _iso(record.started_at),
            "ExpiresAt": _iso(record.expires_at),
            "Result": json.dumps(record.result) if record.result is not None else "",
            "Progress": json.dumps(record.progress) if record.progress is not None else "",
        }

    def _address(self, key: str) -> tuple[str, str]:
        return hashlib.sha256(key.encode()).hexdigest()[:2], table_key(key)

    def _read(self, key: str) -> IdempotencyRecord | None:
        address = self._address(key)
        entity = self._tables.run(
            self._name, "read idempotency key", lambda t: _absent_as_none(lambda: t.get_entity(*address))
        )
        if entity is None:
            return None
        result = entity.get("Result") or ""
        progress = entity.get("Progress") or ""
        status = entity["Status"]
        return IdempotencyRecord(
            key=key,
            status=status if status in ("completed", "released") else "in_progress",
            started_at=datetime.fromisoformat(entity["StartedAt"]),
            expires_at=datetime.fromisoformat(entity["ExpiresAt"]),
            result=json.loads(result) if result else None,
            etag=_etag(entity.metadata),
            progress=json.loads(progress) if progress else None,
        )

    def _insert(self, record: IdempotencyRecord) -> str:
        entity = self._entity(record)
        metadata = self._tables.run(
            self._name, "claim idempotency key", lambda t: t.create_entity(entity), conflicts=True
        )
        return _etag(metadata)

    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> str:
        from azure.data.tables import UpdateMode

        return self._conditional(self._entity(record), UpdateMode.REPLACE, etag, "take over idempotency key")

    def _update(
        self,
        key: str,
        *,
        etag: str,
        progress: dict[str, Any] | None,
        status: Literal["in_progress", "released"] | None = None,
    ) -> str:
        from azure.data.tables import UpdateMode

        partition, row = self._address(key)
        # MERGE: only the properties named here change (one request, no read).
        entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
        if progress is not None:
            entity["Progress"] = json.dumps(progress)
        if status is not None:
            entity["Status"] = status
        return self._conditional(entity, UpdateMode.MERGE, etag, "checkpoint idempotency key")

    def _conditional(self, entity: dict[str, Any], mode: Any, etag: str | None, operation: str) -> str:
        """Write ``entity`` (``mode``: replace or merge) only over version ``etag``; its new etag."""
        from azure.core import MatchConditions

        metadata = self._tables.run(
            self._name,
            operation,
            lambda t: t.update_entity(
                entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
            ),
            conflicts=True,
        )
        return _etag(metadata)

    def _upsert(self, record: IdempotencyRecord) -> None:
        from azure.data.tables import UpdateMode

        entity = self._entity(record)
        self._tables.run(
            self._name, "complete idempotency key", lambda t: t.upsert_entity(entity, mode=UpdateMode.REPLACE)
        )

    def _delete(self, key: str, *, etag: str | None) -> None:
        _conditional_delete(self._tables, self._name, *self._address(key), etag=etag, what="idempotency key")


class TableKeyValueStore(KeyValueStore):
    """JSON values in table ``wgstate``: PartitionKey = namespace, RowKey = key."""

    def __init__(self, tables: Tables, table_name: str) -> None:
        self._tables = tables
        self._name = table_name

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        address = table_key(namespace), table_key(key)
        entity = self._tables.run(
            self._name, "read state", lambda t: _absent_as_none(lambda: t.get_entity(*address))
        )
        if entity is None:
            return None
        return str(entity["Value"]), _etag(entity.metadata)

    def _read_many(self, namespace: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """One query over the namespace's partition for all ``keys``."""
        if len(keys) <= 1:
            return super()._read_many(namespace, keys)
        by_row = {table_key(key): key for key in keys}
        parameters = {"ns": table_key(namespace)} | {f"k{n}": row for n, row in enumerate(by_row)}
        rows = " or ".join(f"RowKey eq @k{n}" for n in range(len(by_row)))

        def read(table: TableClient) -> dict[str, tuple[str, str]]:
            found: dict[str, tuple[str, str]] = {}
            for row in table.query_entities(f"PartitionKey eq @ns and ( {rows} )", parameters=parameters):
                key = by_row.get(str(row["RowKey"]))
                if key is not None:
                    found[key] = (str(row["Value"]), _etag(row.metadata))
            return found

        return self._tables.run(self._name, "read state", read)

    def _items(
        self, namespace: str, start: str | None, stop: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """One range query on the namespace's partition; the service returns its rows in RowKey order."""
        conditions = ["PartitionKey eq @ns"]
        parameters = {"ns": table_key(namespace)}
        if start is not None:
            conditions.append("RowKey ge @start")
            parameters["start"] = table_key(start)
        if stop is not None:
            conditions.append("RowKey lt @stop")
            parameters["stop"] = table_key(stop)

        def read(table: TableClient) -> list[tuple[str, str]]:
            rows = table.query_entities(
                " and ".join(conditions),
                parameters=parameters,
                select=["RowKey", "Value"],
                results_per_page=min(limit, 1000),
            )
            found: list[tuple[str, str]] = []
            for row in rows:
                key = key_of_table_key(str(row["RowKey"]))
                if key is None:
                    continue
                found.append((key, str(row["Value"])))
                if len(found) >= limit:
                    break
            return found

        return self._tables.run(self._name, "list state", read)

    def _texts(self, namespace: str, limit: int) -> list[str]:
        def read(table: TableClient) -> list[str]:
            rows = table.query_entities(
                "PartitionKey eq @ns",
                parameters={"ns": table_key(namespace)},
                results_per_page=min(limit, 1000),
            )
            texts: list[str] = []
            for row in rows:
                texts.append(str(row["Value"]))
                if len(texts) >= limit:
                    break
            return texts

        return self._tables.run(self._name, "list state", read)

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": table_key(namespace), "RowKey": table_key(key), "Value": text}

        def write(table: TableClient) -> Any:
            if if_absent:
                return table.create_entity(entity)
            if if_match is not None:
                return table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=if_match,
                    match_condition=MatchConditions.IfNotModified,
                )
            return table.upsert_entity(entity, mode=UpdateMode.REPLACE)

        metadata = self._tables.run(
            self._name, "write state", write, conflicts=if_absent or if_match is not None
        )
        return _etag(metadata)

    def _delete(self, namespace: str, key: str, *, if_match: str | None) -> None:
        _conditional_delete(
            self._tables, self._name, table_key(namespace), table_key(key), etag=if_match, what="state"
        )


def _conditional_delete(
    tables: Tables, name: str, partition: str, row: str, *, etag: str | None, what: str
) -> None:
    from azure.core import MatchConditions

    def delete(table: TableClient) -> None:
        if etag is None:
            table.delete_entity(partition, row)
        else:
            table.delete_entity(partition, row, etag=etag, match_condition=MatchConditions.IfNotModified)

    # The SDK already treats 404 (absent) as success; 412 means the etag moved on.
    tables.run(name, f"delete {what}", delete, conflicts=etag is not None)


class TableAuditLog(AuditLog):
    """Audit entries in table ``wgaudit``: one partition per day, keys in reverse time order.

    Both keys count down as time goes on, so the service's natural (PartitionKey, RowKey)
    order is newest first and ``list`` reads only what it returns.
    """

    def __init__(self, tables: Tables, table_name: str, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self._tables = tables
        self._name = table_name

    def _append(self, entry: AuditEntry) -> None:
        entity = self._entity(entry)
        try:
            self._tables.run(
                self._name, "append audit entry", lambda t: t.create_entity(entity), conflicts=True
            )
        except WriteConflict:
            message = f"audit entry {entry.id} already exists; the audit log is append-only"
            raise PermanentError(message) from None

    def _append_once(self, entries: Sequence[AuditEntry]) -> None:
        # One day's entries share a partition: one transaction (or a few, under the service's
        # size limit), each stored all or none.
        for entities in _under_transaction_size([self._entity(entry) for entry in entries]):
            try:
                self._tables.run(self._name, "append audit entries", _inserting_all(entities), conflicts=True)
                continue
            except WriteConflict:
                pass  # some were stored before (a retried write): store the others one by one
            for entity in entities:
                # Only "it exists already" is skipped; any other refusal is raised (never dropped).
                self._tables.run(self._name, "append audit entry", _creating_unless_stored(entity))

    @staticmethod
    def _entity(entry: AuditEntry) -> dict[str, Any]:
        # Stamped by AuditLog.append / append_once.
        assert entry.at is not None
        assert entry.id is not None
        return {
            "PartitionKey": _day_key(entry.at),
            "RowKey": f"{_time_key(entry.at)}_{table_key(entry.id)}",
            "Id": entry.id,
            "At": _iso(entry.at),
            "Actor": entry.actor,
            "Action": entry.action,
            "Target": entry.target,
            "Reason": entry.reason,
            "CorrelationId": entry.correlation_id or "",
            "Details": json.dumps(dict(entry.details), separators=(",", ":")),
        }

    def _list(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        def read(table: TableClient) -> list[AuditEntry]:
            if since is None:
                rows = table.list_entities(results_per_page=min(limit, 1000))
            else:
                rows = table.query_entities(
                    "PartitionKey le @day and RowKey le @time",
                    parameters={"day": _day_key(since), "time": f"{_time_key(since)}_~"},
                    results_per_page=min(limit, 1000),
                )
            return _take(rows, limit, _entry_from)  # pages are fetched here, inside the healing

        return self._tables.run(self._name, "list audit entries", read)

    def _list_actions(
        self, actions: Sequence[str], target: str | None, since: datetime | None, limit: int
    ) -> list[AuditEntry]:
        """One query filtered by the service on ``Action`` (and ``Target``): only matching entries
        travel, newest first as the keys order them; ``since`` bounds the keys, so the service reads
        the window's partitions only."""
        parameters: dict[str, str] = {f"a{n}": action for n, action in enumerate(actions)}
        # Spaced parentheses: the SDK finds parameters by splitting the filter on spaces.
        conditions = ["( " + " or ".join(f"Action eq @a{n}" for n in range(len(actions))) + " )"]
        if target is not None:
            conditions.append("Target eq @target")
            parameters["target"] = target
        if since is not None:
            conditions[:0] = ["PartitionKey le @day", "RowKey le @time"]
            parameters |= {"day": _day_key(since), "time": f"{_time_key(since)}_~"}

        def read(table: TableClient) -> list[AuditEntry]:
            rows = table.query_entities(
                " and ".join(conditions), parameters=parameters, results_per_page=min(limit, 1000)
            )
            return _take(rows, limit, _entry_from)

        return self._tables.run(self._name, "list audit entries", read)


# The Table service refuses a transaction over 4 MiB; entities are grouped well under it.
_TRANSACTION_BYTES: Final = 3_500_000


def _under_transaction_size(entities: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``entities`` in order, grouped so that each group's JSON stays under the transaction limit."""
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for entity in entities:
        length = len(json.dumps(entity).encode("utf-8")) + 400  # the part's own lines
        if groups[-1] and size + length > _TRANSACTION_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(entity)
        size += length
    return groups


def _inserting_all(entities: list[dict[str, Any]]) -> Callable[[TableClient], None]:
    """Insert ``entities`` (one partition) in one transaction."""
    return lambda table: insert_all(table, entities)


def _creating_unless_stored(entity: dict[str, Any]) -> Callable[[TableClient], bool]:
    """Create ``entity``; False when it exists already (a missing table is still raised)."""

    def create(table: TableClient) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            table.create_entity(entity)
        except ResourceExistsError as exc:
            if _table_missing(exc):
                raise
            return False
        return True

    return create


def _take(rows: Any, limit: int, convert: Callable[[Any], AuditEntry]) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for row in rows:
        out.append(convert(row))
        if len(out) >= limit:
            break
    return out


def _entry_from(row: Any) -> AuditEntry:
    return AuditEntry(
        actor=row["Actor"],
        action=row["Action"],
        target=row["Target"],
        reason=row["Reason"],
        correlation_id=row.get("CorrelationId") or None,
        details=json.loads(row.get("Details") or "{}"),
        at=datetime.fromisoformat(row["At"]),
        id=row["Id"],
    )


def _day_key(moment: datetime) -> str:
    return f"{_LAST_DAY - int(moment.astimezone(UTC).strftime('%Y%m%d')):08d}"


def _time_key(moment: datetime) -> str:
    micros = (moment.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{_REVERSE_BASE - micros:019d}"
