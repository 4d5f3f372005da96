"""Timer triggers on the real host: run on startup, then every second on the NCRONTAB schedule."""

from __future__ import annotations

import time

import pytest
from minihost_helpers import StartHost

pytestmark = pytest.mark.functional


def test_a_timer_runs_on_startup_and_then_every_second(start_host: StartHost) -> None:
    # GIVEN the fixture timer: schedule "* * * * * *" (from an app setting) and run_on_startup
    before = time.time()
    running = start_host()

    # WHEN the host has run for a little over two seconds
    ticks = running.wait_for_records("timer_tick", 3, timeout=5)

    # THEN the first invocation came right at startup and the next ones on whole seconds
    assert ticks[0]["at"] - before < 1.0
    scheduled = ticks[1:3]
    assert all(row["at"] % 1 < 0.5 for row in scheduled), [row["at"] for row in scheduled]
    assert 0.5 < scheduled[1]["at"] - scheduled[0]["at"] < 1.5
    # AND each got a func.TimerRequest under the binding's parameter name, not past due
    assert all(row["type"] == "TimerRequest" and row["past_due"] is False for row in ticks)


def test_a_schedule_from_the_settings_can_slow_the_timer_down(start_host: StartHost) -> None:
    # GIVEN a schedule that fires once a year WHEN the host runs THEN only the startup run happens
    running = start_host(environ={"MH_TIMER_SCHEDULE": "0 0 0 1 1 *"})
    running.wait_for_records("timer_tick", 1)
    time.sleep(1.5)
    assert len(running.records("timer_tick")) == 1
