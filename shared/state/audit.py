"""The append-only audit log: stamping and validation here, storage in the backends."""

from __future__ import annotations

import builtins
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from shared.errors import InvalidPayloadError
from shared.state.ports import AuditEntry, Clock, utc_now

__all__ = ["MAX_ACTIONS_PER_QUERY", "MAX_DETAILS_CHARS", "MAX_ENTRIES_ONCE", "MAX_LIST_LIMIT", "AuditLog"]

MAX_DETAILS_CHARS: Final = 30_000
MAX_LIST_LIMIT: Final = 1000
# Azure Tables allows 15 comparisons in one filter: the two key bounds, the target and these.
MAX_ACTIONS_PER_QUERY: Final = 10
# One Azure Tables transaction holds at most 100 entities (and 4 MiB).
MAX_ENTRIES_ONCE: Final = 100


class AuditLog(ABC):
    """Append entries and list them newest first; there is no update and no delete."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Store ``entry`` with ``at`` (now, unless given) and a unique ``id``; returns the stored entry.

        Raises:
            InvalidPayloadError: actor/action/target empty, or details not JSON or too large.
            RetryableError: the store is unavailable.
        """
        stamped = _checked(entry, at=entry.at or self._clock(), entry_id=entry.id or uuid.uuid4().hex)
        self._append(stamped)
        return stamped

    def append_once(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditEntry]:
        """Store ``entries`` together, each at most once: one write per day they fall on (in Azure
        Tables, a transaction); an entry stored already (the same ``id`` and ``at``) is skipped and
        the others are stored (then one request each: the retry of a write that was cut short).

        Each entry brings its own ``id`` and ``at``, the same on every retry of the work it records
        (fixed when the step was taken and kept with the work's progress), so a retry after a lost
        answer or a crash writes nothing twice.

        Raises:
            InvalidPayloadError: an entry without ``id`` or ``at``, more than
                ``MAX_ENTRIES_ONCE``, two with one id, or one ``append`` would refuse.
            RetryableError: the store is unavailable.
        """
        if len(entries) > MAX_ENTRIES_ONCE:
            raise InvalidPayloadError.for_field("entries", f"at most {MAX_ENTRIES_ONCE} in one write")
        stamped: builtins.list[AuditEntry] = []
        for entry in entries:
            if not entry.id or entry.at is None or entry.at.tzinfo is None:
                raise InvalidPayloadError.for_field(
                    "entries", "each needs its own id and a timezone-aware at"
                )
            stamped.append(_checked(entry, at=entry.at, entry_id=entry.id))
        if len({entry.id for entry in stamped}) != len(stamped):
            raise InvalidPayloadError.for_field("entries", "two entries share an id")
        days: dict[str, builtins.list[AuditEntry]] = {}
        for entry in stamped:
            assert entry.at is not None
            days.setdefault(entry.at.strftime("%Y%m%d"), []).append(entry)
        for group in days.values():
            self._append_once(group)
        return stamped

    def list(self, *, since: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        """Entries at or after ``since``, newest first, at most ``limit`` (1 to 1000).

        Raises:
            InvalidPayloadError: ``limit`` is out of range or ``since`` has no time zone.
            RetryableError: the store is unavailable.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidPayloadError.for_field("limit", f"expected 1 to {MAX_LIST_LIMIT}")
        if since is not None and since.tzinfo is None:
            raise InvalidPayloadError.for_field("since", "must be timezone-aware")
        return self._list(since.astimezone(UTC) if since else None, limit)

    def list_actions(
        self,
        actions: Sequence[str],
        *,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        """Entries whose action is one of ``actions`` (and whose target is ``target``, when given), at
        or after ``since``, newest first, at most ``limit`` (1 to 1000). The store selects them (in
        Azure Tables a filter on ``Action`` / ``Target`` evaluated by the service), so however many
        other entries the log holds, they never crowd these out.

        Raises:
            InvalidPayloadError: no action, more than ``MAX_ACTIONS_PER_QUERY``, an empty one or an
                empty target, ``limit`` out of range, or ``since`` without a time zone.
            RetryableError: the store is unavailable.
        """
        wanted = tuple(dict.fromkeys(actions))
        if not 1 <= len(wanted) <= MAX_ACTIONS_PER_QUERY or not all(isinstance(a, str) and a for a in wanted):
            raise InvalidPayloadError.for_field(
                "actions", f"expected 1 to {MAX_ACTIONS_PER_QUERY} non-empty action names"
            )
        if target is not None and not target:
            raise InvalidPayloadError.for_field("target", "expected a non-empty target, or none")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidPayloadError.for_field("limit", f"expected 1 to {MAX_LIST_LIMIT}")
        if since is not None and since.tzinfo is None:
            raise InvalidPayloadError.for_field("since", "must be timezone-aware")
        return self._list_actions(wanted, target, since.astimezone(UTC) if since else None, limit)

    @abstractmethod
    def _append(self, entry: AuditEntry) -> None:
        """Insert a fully stamped entry (never overwrite)."""

    @abstractmethod
    def _append_once(self, entries: Sequence[AuditEntry]) -> None:
        """Insert stamped entries of one day, skipping those stored already (same id and time)."""

    @abstractmethod
    def _list(self, since: datetime | None, limit: int) -> builtins.list[AuditEntry]:
        """Newest first, ``at >= since``, at most ``limit``."""

    @abstractmethod
    def _list_actions(
        self, actions: Sequence[str], target: str | None, since: datetime | None, limit: int
    ) -> builtins.list[AuditEntry]:
        """Newest first, ``action in actions``, ``target`` when given, ``at >= since``, at most ``limit``."""


def _checked(entry: AuditEntry, *, at: datetime, entry_id: str) -> AuditEntry:
    """``entry`` as stored: its names checked, its details JSON, ``at`` in UTC, ``entry_id`` its id.

    Raises:
        InvalidPayloadError: actor/action/target empty, or details not JSON or too large.
    """
    for name in ("actor", "action", "target"):
        if not getattr(entry, name):
            raise InvalidPayloadError.for_field(name, "is required")
    return replace(entry, at=at.astimezone(UTC), id=entry_id, details=_check_details(entry))


def _check_details(entry: AuditEntry) -> dict[str, object]:
    try:
        text = json.dumps(dict(entry.details), separators=(",", ":"), allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError.for_field("details", f"not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_DETAILS_CHARS:
        raise InvalidPayloadError.for_field(
            "details", f"{len(text)} characters; the limit is {MAX_DETAILS_CHARS}"
        )
    details: dict[str, object] = json.loads(text)
    return details
