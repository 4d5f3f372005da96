"""In-memory twins of the table backends: same semantics, thread-safe, injectable clock."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.errors import PermanentError
from shared.state.audit import AuditLog
from shared.state.errors import WriteConflict
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY, IdempotencyRecord, IdempotencyStore
from shared.state.kv import KeyValueStore
from shared.state.ports import AuditEntry, Clock, utc_now
from shared.state.tables import is_hashed_key, table_key

__all__ = ["MemoryAuditLog", "MemoryIdempotencyStore", "MemoryKeyValueStore"]


class _Etags:
    """Monotonic ETags shaped like the Table service's weak ETags."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f'W/"mem-{next(self._counter)}"'


class MemoryIdempotencyStore(IdempotencyStore):
    """Idempotency records in a dict guarded by a lock."""

    def __init__(
        self, *, clock: Clock = utc_now, in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY
    ) -> None:
        super().__init__(clock=clock, in_progress_expiry=in_progress_expiry)
        self._records: dict[str, IdempotencyRecord] = {}
        self._lock = threading.Lock()
        self._etags = _Etags()

    def _read(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._records.get(key)

    def _insert(self, record: IdempotencyRecord) -> str:
        with self._lock:
            if record.key in self._records:
                raise WriteConflict(record.key)
            return self._store(record)

    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> str:
        with self._lock:
            current = self._records.get(record.key)
            if current is None or current.etag != etag:
                raise WriteConflict(record.key)
            return self._store(record)

    def _update(
        self,
        key: str,
        *,
        etag: str,
        progress: dict[str, Any] | None,
        status: Literal["in_progress", "released"] | None = None,
    ) -> str:
        with self._lock:
            current = self._records.get(key)
            if current is None or current.etag != etag:
                raise WriteConflict(key)
            return self._store(
                replace(
                    current,
                    progress=progress if progress is not None else current.progress,
                    status=status or current.status,
                )
            )

    def _store(self, record: IdempotencyRecord) -> str:
        etag = self._etags.next()
        self._records[record.key] = replace(record, etag=etag)
        return etag

    def _upsert(self, record: IdempotencyRecord) -> None:
        with self._lock:
            self._records[record.key] = replace(record, etag=self._etags.next())

    def _delete(self, key: str, *, etag: str | None) -> None:
        with self._lock:
            current = self._records.get(key)
            if current is None:
                return
            if etag is not None and current.etag != etag:
                raise WriteConflict(key)
            del self._records[key]


class MemoryKeyValueStore(KeyValueStore):
    """JSON texts by (namespace, key) in a dict guarded by a lock."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._etags = _Etags()

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        with self._lock:
            return self._values.get((namespace, key))

    def _texts(self, namespace: str, limit: int) -> list[str]:
        with self._lock:
            return [text for (ns, _), (text, _) in self._values.items() if ns == namespace][:limit]

    def _items(
        self, namespace: str, start: str | None, stop: str | None, limit: int
    ) -> list[tuple[str, str]]:
        # Ordered and bounded by the escaped keys, as the table's RowKeys are.
        low = table_key(start) if start is not None else None
        high = table_key(stop) if stop is not None else None
        with self._lock:
            stored = [
                (table_key(key), key, text)
                for (ns, key), (text, _) in self._values.items()
                if ns == namespace
            ]
        chosen = sorted(
            (row, key, text)
            for row, key, text in stored
            if not is_hashed_key(row) and (low is None or row >= low) and (high is None or row < high)
        )
        return [(key, text) for _, key, text in chosen[:limit]]

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        with self._lock:
            current = self._values.get((namespace, key))
            if if_absent and current is not None:
                raise WriteConflict(key)
            if if_match is not None and (current is None or current[1] != if_match):
                raise WriteConflict(key)
            etag = self._etags.next()
            self._values[(namespace, key)] = (text, etag)
            return etag

    def _delete(self, namespace: str, key: str, *, if_match: str | None) -> None:
        with self._lock:
            current = self._values.get((namespace, key))
            if current is None:
                return
            if if_match is not None and current[1] != if_match:
                raise WriteConflict(key)
            del self._values[(namespace, key)]


class MemoryAuditLog(AuditLog):
    """Audit entries in a list; listing sorts newest first like the table's reversed keys."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self._entries: list[tuple[datetime, int, AuditEntry]] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._ids: set[str] = set()

    def _append(self, entry: AuditEntry) -> None:
        assert entry.at is not None  # stamped by AuditLog.append
        with self._lock:
            if entry.id in self._ids:
                raise PermanentError(f"audit entry {entry.id} already exists; the audit log is append-only")
            self._ids.add(str(entry.id))
            self._entries.append((entry.at, next(self._sequence), entry))

    def _append_once(self, entries: Sequence[AuditEntry]) -> None:
        with self._lock:
            stored = {(entry.at, entry.id) for _, _, entry in self._entries}
            for entry in entries:
                assert entry.at is not None
                if (entry.at, entry.id) in stored:
                    continue  # the same entry (its id and time), written before
                self._ids.add(str(entry.id))
                self._entries.append((entry.at, next(self._sequence), entry))

    def _list(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        with self._lock:
            rows = sorted(self._entries, key=lambda row: (row[0], row[1]), reverse=True)
        return [entry for at, _, entry in rows if since is None or at >= since][:limit]

    def _list_actions(
        self, actions: Sequence[str], target: str | None, since: datetime | None, limit: int
    ) -> list[AuditEntry]:
        with self._lock:
            rows = sorted(self._entries, key=lambda row: (row[0], row[1]), reverse=True)
        return [
            entry
            for at, _, entry in rows
            if (since is None or at >= since)
            and entry.action in actions
            and (target is None or entry.target == target)
        ][:limit]
