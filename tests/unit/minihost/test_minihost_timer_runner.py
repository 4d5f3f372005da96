"""TimerRunner: past_due after an overrun, missed occurrences coalesced, one invocation at a time."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import azure.functions as func

from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import read_functions
from local.minihost.timers import TimerRunner

SECOND = timedelta(seconds=1)


def test_an_overrun_gives_one_late_past_due_invocation_then_the_schedule_resumes() -> None:
    # GIVEN an every-second timer whose first invocation takes 2.3 s
    seen: list[tuple[bool, dict[str, str]]] = []
    done = threading.Event()
    app = func.FunctionApp()

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        seen.append((timer.past_due, dict(timer.schedule_status)))  # type: ignore[attr-defined]
        if len(seen) == 1:
            time.sleep(2.3)
        if len(seen) == 3:
            done.set()

    (spec,) = read_functions(app, app_ref="t:app", directory="/app", environ={})
    loop = EventLoopThread()
    runner = TimerRunner(spec, Invoker(loop))

    # WHEN it runs for three invocations
    runner.start()
    try:
        assert done.wait(15)
    finally:
        runner.request_stop()
        assert runner.wait(10)

    # THEN (with S the first occurrence, on a whole second) the invocations were scheduled for S, S+1, then
    # a fresh occurrence after the overrun: S+2 was skipped, not replayed in a burst of catch-up runs
    (first_late, first), (second_late, second), (third_late, third) = seen
    assert set(first) == {"Last", "Next", "LastUpdated"}
    start = _at(first["Last"])
    assert start.microsecond == 0
    assert _at(first["Next"]) == start + SECOND
    # the second one is S+1, run late (right after the 2.3 s overrun) and so past due
    assert _at(second["Last"]) == start
    assert _at(second["Next"]) == start + 2 * SECOND
    assert _at(second["LastUpdated"]) - (start + SECOND) > SECOND
    # the third is the first occurrence after the overrun ended (S+3 unless the machine stalled)
    third_scheduled = _at(third["Next"]) - SECOND
    assert _at(third["Last"]) == start + SECOND
    assert third_scheduled >= start + 3 * SECOND
    assert third_scheduled > _at(second["LastUpdated"])
    assert (first_late, second_late, third_late) == (False, True, False)


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)
