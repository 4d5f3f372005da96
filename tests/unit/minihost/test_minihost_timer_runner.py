"""TimerRunner: past_due after an overrun, missed occurrences coalesced, one invocation at a time."""

from __future__ import annotations

import threading
import time

import azure.functions as func

from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import read_functions
from local.minihost.timers import TimerRunner


def test_an_overrun_gives_one_late_past_due_invocation_then_the_schedule_resumes() -> None:
    # GIVEN an every-second timer whose first invocation takes 2.3 s
    seen: list[tuple[float, bool, dict[str, str]]] = []
    done = threading.Event()
    app = func.FunctionApp()

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        seen.append((time.time(), timer.past_due, dict(timer.schedule_status)))  # type: ignore[attr-defined]
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
        assert done.wait(8)
    finally:
        runner.request_stop()
        assert runner.wait(5)

    # THEN the one after the overrun was past due and fired at once; the missed ones were not replayed
    (first_at, first_late, status), (second_at, second_late, _), (third_at, third_late, _) = seen
    assert (first_late, second_late, third_late) == (False, True, False)
    assert 2.2 < second_at - first_at < 2.6
    assert 0.3 < third_at - second_at < 1.1  # back on whole seconds, not a burst of catch-up runs
    assert set(status) == {"Last", "Next", "LastUpdated"}
