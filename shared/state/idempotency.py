"""Idempotency keys: the base holds the claim logic, backends store records (Powertools-style)."""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from shared.errors import InvalidPayloadError
from shared.state.errors import ConcurrencyError, WriteConflict
from shared.state.ports import Claim, ClaimStatus, Clock, utc_now

__all__ = [
    "DEFAULT_IN_PROGRESS_EXPIRY",
    "DEFAULT_TTL",
    "MAX_KEY_LENGTH",
    "MAX_RESULT_CHARS",
    "IdempotencyRecord",
    "IdempotencyStore",
]

# host.json functionTimeout is 5 minutes: a holder older than that has crashed or been killed.
DEFAULT_IN_PROGRESS_EXPIRY: Final = timedelta(minutes=6)
DEFAULT_TTL: Final = timedelta(days=7)
MAX_KEY_LENGTH: Final = 512
# Results live in one table property (64 KiB); keep them small: ids and counts, not documents.
MAX_RESULT_CHARS: Final = 16_000
_RACE_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One stored key as backends see it."""

    key: str
    status: Literal["in_progress", "completed"]
    started_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None = None
    etag: str | None = None


class IdempotencyStore(ABC):
    """Claim / complete / release over a store with conditional writes.

    Backends implement five small methods; a conditional write that loses raises
    ``WriteConflict``. Expired records behave as absent.
    """

    def __init__(
        self, *, clock: Clock = utc_now, in_progress_expiry: timedelta = DEFAULT_IN_PROGRESS_EXPIRY
    ) -> None:
        self._clock = clock
        self.in_progress_expiry = in_progress_expiry

    def claim(self, key: str, *, ttl: timedelta, in_progress_expiry: timedelta | None = None) -> Claim:
        """Try to become the one caller doing the work for ``key``.

        Raises:
            InvalidPayloadError: the key is empty or too long, or ``ttl`` is not positive.
            ConcurrencyError: the key kept changing under us (extreme contention).
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        if ttl <= timedelta(0):
            raise InvalidPayloadError.for_field("ttl", "must be positive")
        expiry = in_progress_expiry if in_progress_expiry is not None else self.in_progress_expiry
        for _ in range(_RACE_ATTEMPTS):
            now = self._clock()
            fresh = IdempotencyRecord(key, "in_progress", started_at=now, expires_at=now + ttl)
            try:
                self._insert(fresh)
                return Claim(key, ClaimStatus.ACQUIRED)
            except WriteConflict:
                pass
            current = self._read(key)
            if current is None:
                continue  # released between our insert and read: try again
            verdict = _judge(current, now, expiry)
            if verdict is not None:
                return verdict
            try:
                self._replace(fresh, etag=current.etag)
                return Claim(key, ClaimStatus.ACQUIRED, taken_over=current.status == "in_progress")
            except WriteConflict:
                continue
        raise ConcurrencyError(
            f"idempotency key kept changing while claiming it ({_RACE_ATTEMPTS} attempts)", key=key
        )

    def complete(
        self, key: str, result: Mapping[str, Any] | None = None, *, ttl: timedelta | None = None
    ) -> None:
        """Record that the work for ``key`` is done; later claims see ``completed`` and ``result``.

        ``ttl`` defaults to the claim's own ttl (or ``DEFAULT_TTL`` if the claim is gone): only then
        is the claim read first. Given a ``ttl``, the completion is one write (its ``started_at`` is
        the completion time: the age of a completed key is never judged).

        Raises:
            InvalidPayloadError: the result is not JSON or larger than ``MAX_RESULT_CHARS``.
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        stored = _check_result(result)
        now = self._clock()
        started = now
        if ttl is None:
            current = self._read(key)
            ttl = current.expires_at - current.started_at if current is not None else DEFAULT_TTL
            started = current.started_at if current is not None else now
        self._upsert(
            IdempotencyRecord(key, "completed", started_at=started, expires_at=now + ttl, result=stored)
        )

    def release(self, key: str) -> None:
        """Drop an in-progress claim (after a failure) so a retry can claim it at once.

        A completed key is left alone: releasing never undoes recorded work.

        Raises:
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        current = self._read(key)
        if current is None or current.status != "in_progress":
            return
        # A conflict means someone else changed it meanwhile: it is theirs now.
        with contextlib.suppress(WriteConflict):
            self._delete(key, etag=current.etag)

    @abstractmethod
    def _read(self, key: str) -> IdempotencyRecord | None:
        """The stored record with its etag, or None."""

    @abstractmethod
    def _insert(self, record: IdempotencyRecord) -> None:
        """Create the record; WriteConflict if the key exists."""

    @abstractmethod
    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> None:
        """Overwrite the record only if its etag is still ``etag``; WriteConflict otherwise."""

    @abstractmethod
    def _upsert(self, record: IdempotencyRecord) -> None:
        """Create or overwrite the record unconditionally."""

    @abstractmethod
    def _delete(self, key: str, *, etag: str | None) -> None:
        """Delete the record if its etag is still ``etag`` (absent is fine); WriteConflict otherwise."""


def _judge(current: IdempotencyRecord, now: datetime, expiry: timedelta) -> Claim | None:
    """The claim to return for an existing record, or None when the caller may take it over."""
    if current.expires_at <= now:
        return None
    if current.status == "completed":
        return Claim(current.key, ClaimStatus.COMPLETED, result=current.result)
    age = now - current.started_at
    if age >= expiry:
        return None
    age = max(age, timedelta(0))
    return Claim(current.key, ClaimStatus.IN_PROGRESS, age=age, expires_in=expiry - age)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidPayloadError.for_field("key", f"expected 1 to {MAX_KEY_LENGTH} characters")


def _check_result(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    try:
        text = json.dumps(dict(result), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError.for_field("result", f"not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_RESULT_CHARS:
        raise InvalidPayloadError.for_field(
            "result", f"{len(text)} characters; keep idempotency results under {MAX_RESULT_CHARS}"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded
