"""The state of a rollout wave as the wave work (issue 4) records it in the KV store."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.errors import InvalidPayloadError
from shared.state import AsyncKeyValuePort

__all__ = [
    "WAVES_NAMESPACE",
    "WaveState",
    "WaveStatus",
    "read_wave_record",
    "read_wave_state",
    "replace_wave_state",
    "write_wave_state",
]

# KV namespace; key = wave name; value {"state": ..., "since": ISO-8601}.
WAVES_NAMESPACE: Final = "waves"


class WaveState(enum.StrEnum):
    """Where a wave is in its rollout; protection grows from PLANNED to ENFORCED."""

    PLANNED = "planned"
    REGISTERING = "registering"
    REPORT_ONLY = "report-only"
    ENFORCED = "enforced"


@dataclass(frozen=True, slots=True)
class WaveStatus:
    """A wave's state and since when (None for a wave never recorded: planned)."""

    name: str
    state: WaveState
    since: datetime | None = None

    @property
    def enforced(self) -> bool:
        """True when the wave's Conditional Access policy is enforced."""
        return self.state is WaveState.ENFORCED


async def read_wave_state(kv: AsyncKeyValuePort, name: str) -> WaveStatus:
    """The recorded state of wave ``name``; an absent record means ``planned``.

    Raises:
        InvalidPayloadError: the stored record is not ``{"state": <known state>, "since": <ISO-8601>}``.
        RetryableError: the store is unavailable.
    """
    return (await read_wave_record(kv, name))[0]


async def read_wave_record(kv: AsyncKeyValuePort, name: str) -> tuple[WaveStatus, str | None]:
    """The state of wave ``name`` and the record's ETag (None: never recorded, i.e. planned).

    Raises:
        InvalidPayloadError: the stored record is malformed.
        RetryableError: the store is unavailable.
    """
    stored = await kv.get(WAVES_NAMESPACE, name)
    if stored is None:
        return WaveStatus(name, WaveState.PLANNED), None
    return _parse_record(name, stored.value), stored.etag


def _parse_record(name: str, value: object) -> WaveStatus:
    if not isinstance(value, dict):
        raise InvalidPayloadError.for_field(f"waves/{name}", "expected an object with state and since")
    try:
        state = WaveState(str(value.get("state")))
    except ValueError:
        known = ", ".join(s.value for s in WaveState)
        raise InvalidPayloadError.for_field(
            f"waves/{name}.state", f"unknown state {value.get('state')!r} (known: {known})"
        ) from None
    return WaveStatus(name, state, _parse_since(name, value.get("since")))


async def write_wave_state(kv: AsyncKeyValuePort, name: str, state: WaveState, since: datetime) -> None:
    """Record wave ``name`` as ``state`` since ``since`` (tests and the wave work).

    Raises:
        RetryableError: the store is unavailable.
    """
    await kv.put(WAVES_NAMESPACE, name, {"state": state.value, "since": since.isoformat()})


async def replace_wave_state(
    kv: AsyncKeyValuePort, name: str, state: WaveState, since: datetime, *, etag: str | None
) -> str:
    """Record ``state`` only if the record is still the one read with ``etag`` (None: absent).

    Two timers racing on one wave: the second write fails instead of overwriting the first.

    Raises:
        ConcurrencyError: the record changed since it was read.
        RetryableError: the store is unavailable.
    """
    value = {"state": state.value, "since": since.isoformat()}
    if etag is None:
        return await kv.put(WAVES_NAMESPACE, name, value, if_absent=True)
    return await kv.put(WAVES_NAMESPACE, name, value, if_match=etag)


def _parse_since(name: str, raw: object) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise InvalidPayloadError.for_field(f"waves/{name}.since", "expected an ISO-8601 timestamp with a zone")
