"""A timer tick and queue invocations share one event loop (as in an Azure worker): nothing blocks it.

The scenario (``bench/loop_blocking.py``, also in ``make bench``) runs a rollout timer tick that
starts the pilot wave (transition, membership sync, CA policy sync) together with six hires on
the ``hr-events`` route, on one loop, against Azurite and the Graph emulator, after a warm-up.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bench.loop_blocking import LIMIT_MS, run_scenario
from local.graph_emulator import EmulatorHandle
from shared.offload import direct

pytestmark = pytest.mark.functional


def _manager(emulator: EmulatorHandle) -> dict[str, Any]:
    assert emulator.demo is not None
    return dict(httpx.get(f"{emulator.base_url}/users/{emulator.demo.head_ids['Finance']}").json())


def test_no_storage_or_queue_call_runs_on_the_loop_and_no_step_holds_it_50_ms(
    app_environ: dict[str, str], emulator_server: EmulatorHandle
) -> None:
    figures = run_scenario(app_environ, emulator_server.admin_url, _manager(emulator_server))
    # every Tables and queue call was made off the loop's thread...
    assert figures.loop_thread_calls == []
    # ...and the loop's own work never kept it from its heartbeat for 50 ms (CPU time of the loop
    # thread: independent of how loaded the machine is; the wall-clock figure is in `make bench`)
    assert figures.heartbeats > 0
    assert figures.max_cpu_gap_ms < LIMIT_MS, figures.to_dict()


def test_the_probe_catches_stores_that_block_the_loop(
    app_environ: dict[str, str], emulator_server: EmulatorHandle
) -> None:
    # GIVEN the stores and the sender running their calls inline, on the loop (the old bug)
    figures = run_scenario(app_environ, emulator_server.admin_url, _manager(emulator_server), offload=direct)
    # THEN the probe names them
    assert {"kv.get", "idempotency.claim", "audit.append", "queue.send"} <= set(figures.loop_thread_calls)
