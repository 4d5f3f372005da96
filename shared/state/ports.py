"""The state ports (what handlers depend on) and the values they exchange."""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

__all__ = [
    "AuditEntry",
    "AuditPort",
    "Claim",
    "ClaimStatus",
    "Clock",
    "IdempotencyPort",
    "KeyValuePort",
    "Versioned",
    "iso",
    "parse_iso",
    "utc_now",
]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 text for state records."""
    return moment.isoformat()


def parse_iso(text: object) -> datetime | None:
    """A datetime from ``iso`` text, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class ClaimStatus(enum.StrEnum):
    """What ``claim`` found: the key is ours now, someone holds it, or the work is done."""

    ACQUIRED = "acquired"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of ``IdempotencyPort.claim``."""

    key: str
    status: ClaimStatus
    # IN_PROGRESS: how long the current holder has held the key.
    age: timedelta = timedelta(0)
    # IN_PROGRESS: how long until the holder's claim expires and it may be taken over.
    expires_in: timedelta = timedelta(0)
    # COMPLETED: the small result the first holder stored with ``complete``.
    result: dict[str, Any] | None = None
    # ACQUIRED from a holder that exceeded the in-progress expiry (it most likely crashed).
    taken_over: bool = False
    # ACQUIRED: the progress an earlier holder checkpointed (None: the work starts afresh).
    progress: dict[str, Any] | None = None
    # ACQUIRED: the version of the claim this caller now holds (checkpoints and releases are
    # conditional on it, so a holder that lost the key can never write over its new holder).
    etag: str | None = None

    @property
    def acquired(self) -> bool:
        """True when the caller now holds the key and should do the work."""
        return self.status is ClaimStatus.ACQUIRED

    @property
    def in_progress(self) -> bool:
        """True when someone else is doing the work right now."""
        return self.status is ClaimStatus.IN_PROGRESS

    @property
    def completed(self) -> bool:
        """True when the work was done before; ``result`` holds what it produced."""
        return self.status is ClaimStatus.COMPLETED


class Versioned(NamedTuple):
    """A stored value with the ETag to pass as ``if_match`` for an optimistic update."""

    value: Any
    etag: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which target, why, under which correlation id.

    ``at`` and ``id`` are set by ``AuditPort.append`` when left empty. Never put secrets
    (TAPs, tokens, webhook secrets) into ``details``.
    """

    actor: str
    action: str
    target: str
    reason: str
    correlation_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    id: str | None = None


class IdempotencyPort(Protocol):
    """Exactly-once effects on top of at-least-once delivery."""

    def claim(self, key: str, *, ttl: timedelta, in_progress_expiry: timedelta | None = None) -> Claim:
        """Try to become the one caller doing the work for ``key``."""
        ...

    def complete(
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

    def checkpoint(self, key: str, progress: Mapping[str, Any], *, etag: str) -> str:
        """Store the holder's progress on its claim; the claim's new version."""
        ...

    def release(
        self, key: str, *, etag: str | None = None, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Give up an in-progress claim after a failure so a retry can proceed (keeping progress)."""
        ...


class KeyValuePort(Protocol):
    """Small JSON values (watermarks, delta links, wave state) with optimistic concurrency."""

    def get(self, namespace: str, key: str) -> Versioned | None:
        """The value and its ETag, or None when absent."""
        ...

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Versioned]:
        """The values of those ``keys`` that exist (one read where the backend allows)."""
        ...

    def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Store ``value``; returns the new ETag."""
        ...

    def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        """Remove the value (absent is fine)."""
        ...

    def values(self, namespace: str, *, limit: int = 1000) -> list[Any]:
        """Up to ``limit`` values stored in ``namespace``."""
        ...

    def items(
        self, namespace: str, *, start: str | None = None, stop: str | None = None, limit: int = 1000
    ) -> list[tuple[str, Any]]:
        """Up to ``limit`` (key, value) pairs of ``namespace`` with ``start <= key < stop``, in key
        order, selected by the store (a range query in Azure Tables)."""
        ...


class AuditPort(Protocol):
    """Append-only audit trail of every write WaveGuard makes."""

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Store ``entry``; returns it with ``at`` and ``id`` filled in."""
        ...

    def append_once(self, entries: Sequence[AuditEntry]) -> builtins.list[AuditEntry]:
        """Store ``entries`` (each with its own ``id`` and ``at``) together, at most once."""
        ...

    def list(self, *, since: datetime | None = None, limit: int = 100) -> list[AuditEntry]:
        """Entries newest first, at or after ``since``, at most ``limit``."""
        ...

    def list_actions(
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
