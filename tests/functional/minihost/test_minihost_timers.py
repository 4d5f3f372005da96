"""Timer triggers on the real host: run on startup, then every second on the NCRONTAB schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from minihost_helpers import StartHost

from tests.waiting import holds_for

pytestmark = pytest.mark.functional
SECOND = timedelta(seconds=1)


def test_a_timer_runs_on_startup_and_then_every_second(start_host: StartHost) -> None:
    # GIVEN the fixture timer: schedule "* * * * * *" (from an app setting) and run_on_startup
    before = datetime.now(UTC)
    running = start_host()

    # WHEN the host has run for a little over two seconds
    ticks = running.wait_for_records("timer_tick", 3, timeout=15)
    startup, first, second = (_schedule_status(row) for row in ticks[:3])

    # THEN the first invocation was the startup run, scheduled for the moment the host started, with the
    # schedule's first occurrence (the next whole second) as Next
    assert before <= startup["Last"] <= datetime.fromtimestamp(ticks[0]["at"], UTC)
    assert startup["Next"].microsecond == 0
    assert startup["Last"] < startup["Next"] <= startup["Last"] + SECOND
    # AND the next ones ran on that occurrence and on the one a second later
    assert first["Last"] == startup["Last"]
    assert first["Next"] == startup["Next"] + SECOND
    assert second["Last"] == startup["Next"]
    assert second["Next"] == startup["Next"] + 2 * SECOND
    # AND each got a func.TimerRequest under the binding's parameter name, not past due
    assert all(row["type"] == "TimerRequest" and row["past_due"] is False for row in ticks)


def test_a_schedule_from_the_settings_can_slow_the_timer_down(start_host: StartHost) -> None:
    # GIVEN a schedule that fires once a year WHEN the host runs THEN only the startup run happens
    running = start_host(environ={"MH_TIMER_SCHEDULE": "0 0 0 1 1 *"})
    (tick,) = running.wait_for_records("timer_tick", 1)
    status = _schedule_status(tick)
    assert status["Next"] == datetime(status["Last"].year + 1, 1, 1, tzinfo=UTC)
    holds_for("only the startup run", lambda: len(running.records("timer_tick")) == 1, seconds=1.5)


def _schedule_status(row: dict[str, Any]) -> dict[str, datetime]:
    return {key: datetime.fromisoformat(value) for key, value in row["schedule_status"].items()}


def test_functions_disabled_by_app_setting_do_not_run_as_on_azure(start_host: StartHost) -> None:
    # GIVEN AzureWebJobs.<name>.Disabled set for the timer and an HTTP function
    running = start_host(
        environ={"AzureWebJobs.timer_tick.Disabled": "true", "AzureWebJobs.health.Disabled": "1"}
    )
    # THEN the timer never fires (not even its startup run) and the route is gone
    assert httpx.get(f"{running.api}/health", timeout=5).status_code == 404
    holds_for("no timer run", lambda: running.records("timer_tick") == [], seconds=1.5)
    described = running.host.describe()
    assert "timer_tick: disabled" in described
    assert "health: disabled" in described
