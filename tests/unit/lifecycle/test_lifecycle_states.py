"""The wave lifecycle moves one step at a time, refuses the rest, and never loses a race."""

from __future__ import annotations

import asyncio

import pytest

from shared.rollout.lifecycle import InvalidTransitionError, transition_wave
from shared.rollout.wave_state import WaveState, read_wave_record, read_wave_state, replace_wave_state
from shared.state import ConcurrencyError, StateStores
from tests.aio import aio
from tests.unit.lifecycle.fakes import START


def test_a_wave_goes_planned_registering_report_only_enforced_and_back(stores: StateStores) -> None:
    # GIVEN a wave never recorded (planned)
    for target in (WaveState.REGISTERING, WaveState.REPORT_ONLY, WaveState.ENFORCED, WaveState.REPORT_ONLY):
        # WHEN it moves to the next state / THEN the store says so, with the time
        status = asyncio.run(transition_wave(aio(stores.kv), "pilot", target, now=START))
        assert asyncio.run(read_wave_state(aio(stores.kv), "pilot")) == status
        assert status.state is target
        assert status.since == START


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), WaveState.ENFORCED),
        ((), WaveState.REPORT_ONLY),
        ((WaveState.REGISTERING,), WaveState.ENFORCED),
        ((WaveState.REGISTERING, WaveState.REPORT_ONLY), WaveState.REGISTERING),
        ((WaveState.REGISTERING, WaveState.REPORT_ONLY, WaveState.ENFORCED), WaveState.PLANNED),
    ],
)
def test_skipping_or_reversing_a_step_is_refused_naming_the_wave(
    stores: StateStores, path: tuple[WaveState, ...], target: WaveState
) -> None:
    for step in path:
        asyncio.run(transition_wave(aio(stores.kv), "pilot", step, now=START))
    before = asyncio.run(read_wave_state(aio(stores.kv), "pilot"))
    with pytest.raises(InvalidTransitionError, match=f"wave 'pilot': cannot go from {before.state.value} to"):
        asyncio.run(transition_wave(aio(stores.kv), "pilot", target, now=START))
    assert asyncio.run(read_wave_state(aio(stores.kv), "pilot")) == before


def test_a_stale_expectation_is_refused(stores: StateStores) -> None:
    # GIVEN a timer read the wave as planned, then another run moved it on
    asyncio.run(transition_wave(aio(stores.kv), "pilot", WaveState.REGISTERING, now=START))
    # WHEN the first acts on its stale read / THEN it is refused and nothing changes
    with pytest.raises(InvalidTransitionError, match="expected it planned but it is registering"):
        asyncio.run(
            transition_wave(
                aio(stores.kv), "pilot", WaveState.REGISTERING, now=START, expected=WaveState.PLANNED
            )
        )


def test_two_writers_racing_on_one_record_one_loses(stores: StateStores) -> None:
    # GIVEN two timers read the same record
    asyncio.run(transition_wave(aio(stores.kv), "pilot", WaveState.REGISTERING, now=START))
    _, etag = asyncio.run(read_wave_record(aio(stores.kv), "pilot"))
    asyncio.run(replace_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, START, etag=etag))
    # WHEN the second writes with the old ETag / THEN it fails instead of overwriting
    with pytest.raises(ConcurrencyError):
        asyncio.run(replace_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, START, etag=etag))
    # AND two first writes of a never-recorded wave: only one wins
    asyncio.run(replace_wave_state(aio(stores.kv), "sales", WaveState.REGISTERING, START, etag=None))
    with pytest.raises(ConcurrencyError):
        asyncio.run(replace_wave_state(aio(stores.kv), "sales", WaveState.REGISTERING, START, etag=None))
