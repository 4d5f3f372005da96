"""A timer tick that cannot succeed by retrying pages someone; a transient failure waits for the next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.envelope import Envelope
from shared.errors import RetryableError, SafetyViolationError
from shared.names import ALERTS
from shared.rollout.lifecycle import run_timer_tick
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import StateStores
from tests.aio import aio


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []

    async def send(self, queue_name: str, envelope: Envelope, **_: object) -> str:
        self.sent.append((queue_name, envelope))
        return "m1"


async def test_a_lint_blocking_the_policy_sync_raises_a_critical_alert(
    make_deps: Callable[..., Any], stores: StateStores
) -> None:
    deps, sync, _ = make_deps()
    sync.fail_next = SafetyViolationError("the policy lint failed, nothing was written", rule="policy-lint")
    sender = Sender()
    assert await run_timer_tick(deps, sender, correlation_id="c1") is None
    [(queue, envelope)] = sender.sent
    assert queue == ALERTS
    assert envelope.payload["severity"] == "critical"
    assert "the policy lint failed" in envelope.payload["summary"]
    # the state change stands and the pending sync is retried by the next tick
    assert (await read_wave_state(aio(stores.kv), "pilot")).state is WaveState.REGISTERING
    result = await run_timer_tick(deps, sender, correlation_id="c2")
    assert result is not None
    assert result.policy_synced


async def test_a_transient_failure_is_not_alerted(make_deps: Callable[..., Any]) -> None:
    deps, sync, _ = make_deps()
    sync.fail_next = RetryableError("graph 503")
    sender = Sender()
    assert await run_timer_tick(deps, sender, correlation_id="c1") is None
    assert sender.sent == []
