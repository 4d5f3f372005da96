"""Wave state in the KV store: absent is planned; a bad record is a clear error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from shared.errors import InvalidPayloadError
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState, read_wave_state, write_wave_state
from shared.state import build_memory_state
from tests.aio import aio


def test_a_wave_never_recorded_is_planned() -> None:
    kv = build_memory_state().kv
    status = asyncio.run(read_wave_state(aio(kv), "pilot"))
    assert (status.state, status.since, status.enforced) == (WaveState.PLANNED, None, False)


def test_written_state_reads_back() -> None:
    kv = build_memory_state().kv
    since = datetime(2026, 12, 1, 8, tzinfo=UTC)
    asyncio.run(write_wave_state(aio(kv), "pilot", WaveState.ENFORCED, since))
    status = asyncio.run(read_wave_state(aio(kv), "pilot"))
    assert (status.state, status.since, status.enforced) == (WaveState.ENFORCED, since, True)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"state": "half-on", "since": "2026-12-01T00:00:00Z"}, "waves/pilot.state"),
        ({"state": "enforced", "since": "yesterday"}, "waves/pilot.since"),
        ({"state": "enforced", "since": "2026-12-01T00:00:00"}, "waves/pilot.since"),
        (["enforced"], "waves/pilot"),
    ],
)
def test_a_bad_record_names_the_field(value: object, field: str) -> None:
    kv = build_memory_state().kv
    kv.put(WAVES_NAMESPACE, "pilot", value)
    with pytest.raises(InvalidPayloadError) as caught:
        asyncio.run(read_wave_state(aio(kv), "pilot"))
    assert caught.value.field == field
