"""TimerRunner: past_due after an overrun, missed occurrences coalesced, one invocation at a time.

The runner runs on a manual clock: an invocation "overruns" by advancing it, and the schedule is
checked to the second, with no real waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import azure.functions as func

from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import read_functions
from local.minihost.timers import TimerRunner
from tests.unit.minihost.manual_clock import ManualClock

SECOND = timedelta(seconds=1)
START = datetime(2026, 12, 1, 8, 0, 0, 250_000, tzinfo=UTC)  # a quarter second past a whole second


def _run(schedule: str, clock: ManualClock, on_tick: Callable[[func.TimerRequest], bool]) -> None:
    """Run a timer with ``schedule`` on ``clock`` until ``on_tick`` returns True."""
    done = threading.Event()
    app = func.FunctionApp()

    @app.timer_trigger(schedule=schedule, arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        if on_tick(timer):
            runner.request_stop()
            done.set()

    (spec,) = read_functions(app, app_ref="t:app", directory="/app", environ={})
    loop = EventLoopThread()
    runner = TimerRunner(spec, Invoker(loop), clock=clock)
    runner.start()
    try:
        assert done.wait(15)
    finally:
        runner.request_stop()
        assert runner.wait(10)
        loop.stop()


def test_an_overrun_gives_one_late_past_due_invocation_then_the_schedule_resumes() -> None:
    # GIVEN an every-second timer whose first invocation takes 2.3 s
    clock = ManualClock(START)
    seen: list[tuple[bool, dict[str, str]]] = []

    def tick(timer: func.TimerRequest) -> bool:
        seen.append((timer.past_due, dict(timer.schedule_status)))  # type: ignore[attr-defined]
        if len(seen) == 1:
            clock.advance(2.3)
        return len(seen) == 3

    # WHEN it runs for three invocations
    _run("* * * * * *", clock, tick)

    # THEN the invocations were scheduled for S, S+1, then a fresh occurrence after the overrun:
    # S+2 and S+3 were skipped, not replayed in a burst of catch-up runs
    s = START.replace(microsecond=0) + SECOND
    (first_late, first), (second_late, second), (third_late, third) = seen
    assert set(first) == {"Last", "Next", "LastUpdated"}
    assert (_at(first["Last"]), _at(first["Next"]), _at(first["LastUpdated"])) == (s, s + SECOND, s)
    # the second is S+1, run 1.3 s late (right after the 2.3 s overrun) and so past due
    assert (_at(second["Last"]), _at(second["Next"])) == (s, s + 2 * SECOND)
    assert _at(second["LastUpdated"]) == s + timedelta(seconds=2.3)
    # the third is the first occurrence after the late run: S+3, on time
    assert (_at(third["Last"]), _at(third["Next"]) - SECOND) == (s + SECOND, s + 3 * SECOND)
    assert _at(third["LastUpdated"]) == s + 3 * SECOND
    assert (first_late, second_late, third_late) == (False, True, False)


def test_the_runner_sleeps_exactly_until_each_occurrence() -> None:
    # GIVEN a timer every 15 minutes, started 5 min 0.25 s past the hour
    clock = ManualClock(START + timedelta(minutes=5))
    fired: list[datetime] = []

    def tick(timer: func.TimerRequest) -> bool:
        fired.append(clock.now())
        return len(fired) == 2

    _run("0 */15 * * * *", clock, tick)
    # THEN it slept to 08:15:00 and then one whole interval, and fired at those instants
    assert clock.sleeps[:2] == [9 * 60 + 59.75, 15 * 60]
    assert fired == [datetime(2026, 12, 1, 8, 15, tzinfo=UTC), datetime(2026, 12, 1, 8, 30, tzinfo=UTC)]


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)
