"""``once``: the one way WaveGuard makes a side effect happen once under at-least-once delivery.

::

    async with once(stores.idempotency, f"onboarding:{envelope.id}", ttl=CLAIM_TTL) as run:
        if run.done:
            return Outcome("duplicate", **run.result)     # the work was done before
        outcome = await do_the_work()
        await run.complete({"userId": outcome.user_id})   # or leave the block: completed, no result
        return outcome

The contract, the same for every caller:

- **Completed before:** ``run.done`` is true and ``run.result`` holds what the first holder stored;
  the body must not repeat the work.
- **Held by someone else:** ``BusyError`` (retryable, with ``retry_after`` = when the holder's claim
  expires) — unless ``when_busy="skip"``, where ``run.skipped`` is true and the body does nothing.
- **The body raises (or is cancelled):** the claim is released so a retry may proceed at once; a
  failed release is logged and the claim expires after ``in_progress_expiry`` instead. The body's
  own error is what propagates. Never completed.
- **The process dies mid-way:** the claim stays in progress until ``in_progress_expiry``; then the
  next claim takes it over (``run.taken_over``: re-check what the dead holder may have written).
- **The body returns:** the key is completed (with the result given to ``complete``, or none),
  unless the body called ``release()`` (work left for later, e.g. a scheduled re-check).
  A completion that cannot be recorded (or finds the claim taken over) raises
  ``CompletionNotRecorded`` (retryable): the effect happened, so callers whose effect is itself
  idempotent may treat it as success.
- **Resumable work:** ``run.checkpoint(progress)`` stores the body's progress on the claim itself
  (one conditional write); whoever claims the key next (after a release, a failure or a takeover)
  finds it in ``run.progress``. ``release(progress)`` leaves progress for later in the same write.
  A checkpoint by a holder whose claim was taken over raises ``ClaimLost`` (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from shared.errors import BusyError, InvalidPayloadError, RetryableError
from shared.state.aio import AsyncIdempotencyPort
from shared.state.idempotency import small_json
from shared.state.ports import Claim

__all__ = ["CompletionNotRecorded", "Run", "once"]

log = logging.getLogger(__name__)


class CompletionNotRecorded(RetryableError):
    """The work was done but its completion could not be stored (the claim will expire)."""


@dataclass(slots=True)
class Run:
    """One pass through ``once``: what the claim found, and how the body settles it."""

    key: str
    claim: Claim
    skipped: bool = False
    _store: AsyncIdempotencyPort | None = field(default=None, repr=False)
    _settled: bool = field(default=False, repr=False)
    _ttl: timedelta | None = field(default=None, repr=False)  # the claim's (completion keeps it)
    _etag: str | None = field(default=None, repr=False)  # the version of the claim this run holds
    _progress: dict[str, Any] | None = field(default=None, repr=False)  # as stored on the claim

    def __post_init__(self) -> None:
        self._etag = self.claim.etag
        self._progress = dict(self.claim.progress) if self.claim.progress is not None else None

    @property
    def done(self) -> bool:
        """The work was completed before; ``result`` holds what it stored."""
        return self.claim.completed

    @property
    def acquired(self) -> bool:
        """This caller holds the key and must do the work."""
        return self.claim.acquired and not self._settled

    @property
    def taken_over(self) -> bool:
        """The key was taken over from a holder whose claim expired (it most likely crashed)."""
        return self.claim.taken_over

    @property
    def result(self) -> dict[str, Any]:
        """The stored result of a completed key (empty when none was stored)."""
        return dict(self.claim.result or {})

    @property
    def progress(self) -> dict[str, Any] | None:
        """The progress checkpointed on this key so far (None: none, the work starts afresh)."""
        return dict(self._progress) if self._progress is not None else None

    async def checkpoint(self, progress: Mapping[str, Any]) -> None:
        """Store ``progress`` on the claim (one conditional write), for whoever holds the key next.

        Raises:
            ClaimLost: another worker took the key over (this holder outlived the in-progress expiry).
            InvalidPayloadError: ``progress`` is not small JSON.
            RetryableError: the store is unavailable.
        """
        if not self.acquired or self._store is None:
            return
        if self._etag is None:  # a store that reports no version: read-free checkpoints need one
            raise RetryableError(f"the claim on {self.key!r} carries no version to checkpoint against")
        self._etag = await self._store.checkpoint(self.key, progress, etag=self._etag)
        self._progress = dict(progress)

    async def complete(
        self, result: Mapping[str, Any] | None = None, *, ttl: timedelta | None = None
    ) -> None:
        """Record the work as done now (later claims see ``done`` and ``result``).

        Raises:
            CompletionNotRecorded: the store failed; the claim expires and the work may be retried.
            InvalidPayloadError: ``result`` is not small JSON.
        """
        if not self.acquired or self._store is None:
            return
        self._settled = True
        try:
            # With the ttl known, the store writes the completion without reading the claim first,
            # over this run's version of the claim (a run whose claim was taken over records nothing).
            await self._store.complete(
                self.key, result, ttl=ttl if ttl is not None else self._ttl, etag=self._etag
            )
        except InvalidPayloadError:
            raise  # the caller's result is not small JSON: a bug to see, not a store failure
        except Exception as exc:
            raise CompletionNotRecorded(
                f"the work for {self.key!r} was done but could not be marked complete: {exc}"
            ) from exc

    async def release(self, progress: Mapping[str, Any] | None = None) -> None:
        """Give the key back now without completing it (the work is left for a later attempt),
        with ``progress`` (else the progress checkpointed last) kept for the next holder. A release
        the store fails is logged; the claim then expires after ``in_progress_expiry`` instead.
        Progress that is not small JSON is logged and the last checkpoint kept. Never raises: it
        runs while the body's own error propagates.
        """
        if not self.acquired or self._store is None:
            return
        if progress is not None:
            try:
                small_json("progress", progress)
                self._progress = dict(progress)
            except InvalidPayloadError as exc:  # keep what was checkpointed last; never mask an error
                log.warning(
                    "progress not kept with the release: %s", exc, extra={"idempotency_key": self.key}
                )
        self._settled = True
        try:
            await self._store.release(self.key, etag=self._etag, progress=self._progress)
        except Exception as exc:  # the claim expires after in_progress_expiry instead
            log.warning(
                "idempotency key not released: %s", type(exc).__name__, extra={"idempotency_key": self.key}
            )


@contextlib.asynccontextmanager
async def once(
    store: AsyncIdempotencyPort,
    key: str,
    *,
    ttl: timedelta,
    in_progress_expiry: timedelta | None = None,
    when_busy: Literal["raise", "skip"] = "raise",
    busy_message: str = "another worker holds this work",
    correlation_id: str | None = None,
) -> AsyncIterator[Run]:
    """Claim ``key`` for the body; settle it as the module docstring says.

    Raises:
        BusyError: another holder has the key (``when_busy="raise"``).
        CompletionNotRecorded: the body succeeded but its completion could not be stored.
        RetryableError: the store is unavailable for the claim.
    """
    claim = await store.claim(key, ttl=ttl, in_progress_expiry=in_progress_expiry)
    if claim.in_progress:
        if when_busy == "raise":
            raise BusyError(
                busy_message, correlation_id=correlation_id, retry_after=claim.expires_in.total_seconds() + 1
            )
        yield Run(key, claim, skipped=True)
        return
    if claim.completed:
        yield Run(key, claim)
        return
    run = Run(key, claim, _store=store, _ttl=ttl)
    try:
        yield run
    except (Exception, asyncio.CancelledError):
        # An error or a cancellation (the invocation timed out): give the key back. Anything else
        # (the process going down) releases nothing: the claim expires instead.
        await run.release()  # progress checkpointed so far stays for the next holder
        raise
    await run.complete()
