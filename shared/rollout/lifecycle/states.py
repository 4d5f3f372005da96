"""The wave lifecycle: planned → registering → report-only → enforced, and rollback to report-only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from shared.errors import PermanentError
from shared.rollout.wave_state import WaveState, WaveStatus, read_wave_record, replace_wave_state
from shared.state import AsyncKeyValuePort

__all__ = ["TRANSITIONS", "InvalidTransitionError", "check_transition", "transition_wave"]

# Protection only grows one step at a time; the one way back is enforced → report-only (rollback).
TRANSITIONS: Final[Mapping[WaveState, frozenset[WaveState]]] = {
    WaveState.PLANNED: frozenset({WaveState.REGISTERING}),
    WaveState.REGISTERING: frozenset({WaveState.REPORT_ONLY}),
    WaveState.REPORT_ONLY: frozenset({WaveState.ENFORCED}),
    WaveState.ENFORCED: frozenset({WaveState.REPORT_ONLY}),
}


class InvalidTransitionError(PermanentError):
    """A wave was asked to move to a state its current state does not lead to."""


def check_transition(wave: str, current: WaveState, target: WaveState) -> None:
    """Refuse a move the lifecycle does not allow.

    Raises:
        InvalidTransitionError: ``current`` does not lead to ``target`` (the message names the wave).
    """
    allowed = TRANSITIONS[current]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed))
        raise InvalidTransitionError(
            f"wave {wave!r}: cannot go from {current.value} to {target.value}"
            f" (from {current.value}: {options})",
            field="wave",
            wave=wave,
            current=current.value,
            target=target.value,
        )


async def transition_wave(
    kv: AsyncKeyValuePort, wave: str, target: WaveState, *, now: datetime, expected: WaveState | None = None
) -> WaveStatus:
    """Move ``wave`` to ``target`` under its record's ETag; returns the new status.

    ``expected`` guards against acting on a stale read: the move happens only from that state.

    Raises:
        InvalidTransitionError: the move is not allowed, or the wave is no longer in ``expected``.
        ConcurrencyError: another writer changed the record meanwhile (re-read and retry).
        RetryableError: the store is unavailable.
    """
    current, etag = await read_wave_record(kv, wave)
    if expected is not None and current.state is not expected:
        raise InvalidTransitionError(
            f"wave {wave!r}: expected it {expected.value} but it is {current.state.value}"
            " (changed meanwhile)",
            field="wave",
            wave=wave,
            current=current.state.value,
            target=target.value,
        )
    check_transition(wave, current.state, target)
    await replace_wave_state(kv, wave, target, now, etag=etag)
    return WaveStatus(wave, target, now)
