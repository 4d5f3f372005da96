"""Idempotency keys: the base holds the claim logic, backends store records (Powertools-style)."""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from shared.errors import InvalidPayloadError, RetryableError
from shared.state.errors import ConcurrencyError, WriteConflict
from shared.state.ports import Claim, ClaimStatus, Clock, utc_now

__all__ = [
    "DEFAULT_IN_PROGRESS_EXPIRY",
    "DEFAULT_TTL",
    "MAX_KEY_LENGTH",
    "MAX_RESULT_CHARS",
    "ClaimLost",
    "IdempotencyRecord",
    "IdempotencyStore",
    "small_json",
]

# host.json functionTimeout is 5 minutes: a holder older than that has crashed or been killed.
DEFAULT_IN_PROGRESS_EXPIRY: Final = timedelta(minutes=6)
DEFAULT_TTL: Final = timedelta(days=7)
MAX_KEY_LENGTH: Final = 512
# Results live in one table property (64 KiB); keep them small: ids and counts, not documents.
MAX_RESULT_CHARS: Final = 16_000
_RACE_ATTEMPTS: Final = 5


class ClaimLost(RetryableError):
    """The claim is no longer this holder's (it outlived the in-progress expiry and another worker
    took the key over): stop, and let the message come back."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One stored key as backends see it.

    ``released``: a holder gave the key back but left its ``progress`` for the next one (a key
    released without progress is deleted instead).
    """

    key: str
    status: Literal["in_progress", "completed", "released"]
    started_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None = None
    etag: str | None = None
    progress: dict[str, Any] | None = None


class IdempotencyStore(ABC):
    """Claim / complete / release over a store with conditional writes.

    Backends implement six small methods; a conditional write that loses raises
    ``WriteConflict``. Expired records behave as absent.

    A holder may ``checkpoint`` its progress on the claim itself: the next holder (after a
    release, or a takeover from a holder that died) gets it back from ``claim`` in the same round
    trip, so resumable work needs no record of its own.
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
                return Claim(key, ClaimStatus.ACQUIRED, etag=self._insert(fresh))
            except WriteConflict:
                pass
            current = self._read(key)
            if current is None:
                continue  # released between our insert and read: try again
            verdict = _judge(current, now, expiry)
            if verdict is not None:
                return verdict
            # A released or abandoned claim hands its progress on; a completion that expired is
            # forgotten whole.
            progress = current.progress if current.status != "completed" else None
            try:
                etag = self._replace(replace(fresh, progress=progress), etag=current.etag)
            except WriteConflict:
                continue
            return Claim(
                key,
                ClaimStatus.ACQUIRED,
                taken_over=current.status == "in_progress",
                progress=progress,
                etag=etag,
            )
        raise ConcurrencyError(
            f"idempotency key kept changing while claiming it ({_RACE_ATTEMPTS} attempts)", key=key
        )

    def complete(
        self,
        key: str,
        result: Mapping[str, Any] | None = None,
        *,
        ttl: timedelta | None = None,
        etag: str | None = None,
    ) -> None:
        """Record that the work for ``key`` is done; later claims see ``completed`` and ``result``.

        ``ttl`` defaults to the claim's own ttl (or ``DEFAULT_TTL`` if the claim is gone): only then
        is the claim read first. Given a ``ttl``, the completion is one write (its ``started_at`` is
        the completion time: the age of a completed key is never judged). ``etag``: the holder's
        version of the claim; the completion is then written only over that version.

        Raises:
            ClaimLost: with ``etag``, the claim changed since (another worker took the key over).
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
        record = IdempotencyRecord(key, "completed", started_at=started, expires_at=now + ttl, result=stored)
        if etag is None:
            self._upsert(record)
            return
        try:
            self._replace(record, etag=etag)
        except WriteConflict:
            raise ClaimLost(f"the claim on {key!r} was taken over; its holder records the work") from None

    def checkpoint(self, key: str, progress: Mapping[str, Any], *, etag: str) -> str:
        """Store ``progress`` on the claim held at version ``etag``; returns its new version.

        Raises:
            ClaimLost: the claim changed since ``etag`` (another worker took the key over).
            InvalidPayloadError: ``progress`` is not JSON or larger than ``MAX_RESULT_CHARS``.
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        stored = small_json("progress", progress)
        try:
            return self._update(key, etag=etag, progress=stored)
        except WriteConflict:
            raise ClaimLost(f"the claim on {key!r} was taken over; this holder stops") from None

    def release(
        self, key: str, *, etag: str | None = None, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Give an in-progress claim back (after a failure, or to leave work for later) so the next
        attempt can claim it at once, keeping ``progress`` for the next holder (a claim left with
        no progress is deleted).

        ``etag``: the holder's version of the claim, so nothing is read first; the holder then
        passes the progress it checkpointed last. Without it, the stored claim is read, and
        progress checkpointed on it is kept.

        A completed key is left alone: releasing never undoes recorded work. A claim that changed
        since ``etag`` is someone else's now and is left alone too.

        Raises:
            InvalidPayloadError: ``progress`` is not JSON or too large.
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        stored = small_json("progress", progress) if progress is not None else None
        kept = stored is not None
        if etag is None:
            current = self._read(key)
            if current is None or current.status != "in_progress":
                return
            etag, kept = current.etag, kept or current.progress is not None
        # A conflict means someone else changed it meanwhile: it is theirs now.
        with contextlib.suppress(WriteConflict):
            if not kept:
                self._delete(key, etag=etag)
            elif etag is not None:  # backends always report one
                self._update(key, etag=etag, progress=stored, status="released")

    def read(self, key: str) -> IdempotencyRecord | None:
        """The stored record for ``key`` as it stands (tooling and tests; work goes through
        ``claim``). Expired records are returned too: judge ``expires_at``.

        Raises:
            InvalidPayloadError: the key is empty or too long.
            RetryableError: the store is unavailable.
        """
        _check_key(key)
        return self._read(key)

    @abstractmethod
    def _read(self, key: str) -> IdempotencyRecord | None:
        """The stored record with its etag, or None."""

    @abstractmethod
    def _insert(self, record: IdempotencyRecord) -> str:
        """Create the record and return its etag; WriteConflict if the key exists."""

    @abstractmethod
    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> str:
        """Overwrite the record only if its etag is still ``etag`` and return the new etag;
        WriteConflict otherwise."""

    @abstractmethod
    def _update(
        self,
        key: str,
        *,
        etag: str,
        progress: dict[str, Any] | None,
        status: Literal["in_progress", "released"] | None = None,
    ) -> str:
        """Set the record's progress (None: leave it as stored) and, when given, its status, only
        if its etag is still ``etag``; the new etag. WriteConflict if it changed or is gone."""

    @abstractmethod
    def _upsert(self, record: IdempotencyRecord) -> None:
        """Create or overwrite the record unconditionally."""

    @abstractmethod
    def _delete(self, key: str, *, etag: str | None) -> None:
        """Delete the record if its etag is still ``etag`` (absent is fine); WriteConflict otherwise."""


def _judge(current: IdempotencyRecord, now: datetime, expiry: timedelta) -> Claim | None:
    """The claim to return for an existing record, or None when the caller may take it over."""
    if current.expires_at <= now or current.status == "released":
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
    return small_json("result", result) if result is not None else None


def small_json(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as stored: JSON of at most ``MAX_RESULT_CHARS``.

    Raises:
        InvalidPayloadError: naming ``name``, when it is not JSON or too large.
    """
    try:
        text = json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError.for_field(name, f"not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_RESULT_CHARS:
        raise InvalidPayloadError.for_field(
            name, f"{len(text)} characters; keep idempotency {name} under {MAX_RESULT_CHARS}"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded
