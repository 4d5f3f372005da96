"""Azure Tables backends: conditional writes with ETags, tables created on first use, errors mapped."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.errors import PermanentError, RetryableError, status_code_of, storage_error
from shared.state.audit import AuditLog
from shared.state.errors import WriteConflict
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY, IdempotencyRecord, IdempotencyStore
from shared.state.kv import KeyValueStore
from shared.state.ports import AuditEntry, Clock, utc_now

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

__all__ = ["TableAuditLog", "TableIdempotencyStore", "TableKeyValueStore", "Tables", "table_key"]

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
    return "sha256~" + hashlib.sha256(text.encode()).hexdigest()


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


@contextmanager
def storage_errors(operation: str, *, conflicts: bool = False) -> Iterator[None]:
    """Map azure-core errors to ours; with ``conflicts``, 404/409/412 become ``WriteConflict``.

    Raises:
        WriteConflict: a conditional write lost (only with ``conflicts=True``).
        RetryableError: transport failure, throttling, 5xx.
        PermanentError: any other 4xx.
    """
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        status = status_code_of(exc)
        if conflicts and status in (404, 409, 412):
            raise WriteConflict(operation) from exc
        raise storage_error(exc, operation=operation) from exc


def _table_missing(exc: Exception) -> bool:
    # A deleted table is an outage to retry (it is recreated on next use), not an absent key.
    return bool(getattr(exc, "error_code", None) == "TableNotFound")


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
        }

    def _address(self, key: str) -> tuple[str, str]:
        return hashlib.sha256(key.encode()).hexdigest()[:2], table_key(key)

    def _read(self, key: str) -> IdempotencyRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors("read idempotency key"):
            try:
                entity = self._tables.client(self._name).get_entity(*self._address(key))
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    self._tables.forget(self._name)
                    raise RetryableError(
                        f"table {self._name} disappeared; it is recreated on the next try"
                    ) from exc
                return None
        result = entity.get("Result") or ""
        return IdempotencyRecord(
            key=key,
            status="completed" if entity["Status"] == "completed" else "in_progress",
            started_at=datetime.fromisoformat(entity["StartedAt"]),
            expires_at=datetime.fromisoformat(entity["ExpiresAt"]),
            result=json.loads(result) if result else None,
            etag=_etag(entity.metadata),
        )

    def _insert(self, record: IdempotencyRecord) -> None:
        with storage_errors("claim idempotency key", conflicts=True):
            self._tables.client(self._name).create_entity(self._entity(record))

    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        with storage_errors("take over idempotency key", conflicts=True):
            self._tables.client(self._name).update_entity(
                self._entity(record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )

    def _upsert(self, record: IdempotencyRecord) -> None:
        from azure.data.tables import UpdateMode

        with storage_errors("complete idempotency key"):
            self._tables.client(self._name).upsert_entity(self._entity(record), mode=UpdateMode.REPLACE)

    def _delete(self, key: str, *, etag: str | None) -> None:
        _conditional_delete(
            self._tables.client(self._name), *self._address(key), etag=etag, what="idempotency key"
        )


class TableKeyValueStore(KeyValueStore):
    """JSON values in table ``wgstate``: PartitionKey = namespace, RowKey = key."""

    def __init__(self, tables: Tables, table_name: str) -> None:
        self._tables = tables
        self._name = table_name

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors("read state"):
            try:
                entity = self._tables.client(self._name).get_entity(table_key(namespace), table_key(key))
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    self._tables.forget(self._name)
                    raise RetryableError(
                        f"table {self._name} disappeared; it is recreated on the next try"
                    ) from exc
                return None
        return str(entity["Value"]), _etag(entity.metadata)

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        table = self._tables.client(self._name)
        entity = {"PartitionKey": table_key(namespace), "RowKey": table_key(key), "Value": text}
        with storage_errors("write state", conflicts=if_absent or if_match is not None):
            if if_absent:
                metadata = table.create_entity(entity)
            elif if_match is not None:
                metadata = table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=if_match,
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                metadata = table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return _etag(metadata)

    def _delete(self, namespace: str, key: str, *, if_match: str | None) -> None:
        table = self._tables.client(self._name)
        _conditional_delete(table, table_key(namespace), table_key(key), etag=if_match, what="state")


def _conditional_delete(table: TableClient, partition: str, row: str, *, etag: str | None, what: str) -> None:
    from azure.core import MatchConditions

    # The SDK already treats 404 (absent) as success; 412 means the etag moved on.
    with storage_errors(f"delete {what}", conflicts=etag is not None):
        if etag is None:
            table.delete_entity(partition, row)
        else:
            table.delete_entity(partition, row, etag=etag, match_condition=MatchConditions.IfNotModified)


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
        # Stamped by AuditLog.append.
        assert entry.at is not None
        assert entry.id is not None
        entity = {
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
        try:
            with storage_errors("append audit entry", conflicts=True):
                self._tables.client(self._name).create_entity(entity)
        except WriteConflict:
            message = f"audit entry {entry.id} already exists; the audit log is append-only"
            raise PermanentError(message) from None

    def _list(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        table = self._tables.client(self._name)
        with storage_errors("list audit entries"):
            if since is None:
                rows = table.list_entities(results_per_page=min(limit, 1000))
            else:
                rows = table.query_entities(
                    "PartitionKey le @day and RowKey le @time",
                    parameters={"day": _day_key(since), "time": f"{_time_key(since)}_~"},
                    results_per_page=min(limit, 1000),
                )
            entries = _take(rows, limit, _entry_from)
        return entries


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
