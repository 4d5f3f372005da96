"""Timer triggers: fire on the NCRONTAB schedule, one invocation at a time per function (Azure's singleton).

past_due: True when an invocation starts more than PAST_DUE_TOLERANCE after its scheduled time, which
happens when the previous invocation overran; the missed occurrences are then coalesced into one late
invocation and the schedule resumes from now, as the Functions host does. Occurrences missed while the
host was not running are not replayed (the real host keeps schedule status in storage for that; the
mini-host keeps none). Times are UTC.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from azure.functions.timer import TimerRequest

from local.minihost.clock import HostClock, SystemClock
from local.minihost.invoker import Invoker, new_invocation_id
from local.minihost.loader import FunctionSpec, TimerTrigger
from local.minihost.logs import fields, get_logger

PAST_DUE_TOLERANCE = timedelta(seconds=1)
log = get_logger("timer")


class TimerRunner:
    """Drives one timer-triggered function on a background thread."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, *, clock: HostClock | None = None) -> None:
        if not isinstance(spec.trigger, TimerTrigger):
            raise TypeError(f"function {spec.name!r} is not a timer trigger")
        self.spec = spec
        self.trigger: TimerTrigger = spec.trigger
        self._invoker = invoker
        self._clock: HostClock = clock or SystemClock()
        self._stop = threading.Event()
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Schedule nothing more; a running invocation goes on."""
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for a running invocation; True when none is left running."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        schedule = self.trigger.schedule
        now = self._clock.now()
        if self.trigger.run_on_startup:
            self._fire(scheduled=now, next_due=schedule.next_after(now))
        due = schedule.next_after(now)
        while not self._stop.is_set():
            if self._clock.sleep((due - self._clock.now()).total_seconds(), self._stop):
                return
            late = self._fire(scheduled=due, next_due=schedule.next_after(due))
            # After an overrun the next occurrence is already past: it fires once, late, and the
            # schedule then resumes from now instead of replaying every missed occurrence.
            due = schedule.next_after(self._clock.now() if late else due)

    def _fire(self, *, scheduled: datetime, next_due: datetime) -> bool:
        invocation_id = new_invocation_id()
        extra = fields(self.spec.name, invocation_id)
        started = self._clock.now()
        past_due = started - scheduled > PAST_DUE_TOLERANCE
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (self._last or scheduled).isoformat(),
                "Next": next_due.isoformat(),
                "LastUpdated": started.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        log.info(
            "Executing %s (timer, scheduled %s, past due %s)",
            self.spec.name,
            scheduled,
            past_due,
            extra=extra,
        )
        self._invoker.invoke_logged(self.spec, lambda: request, invocation_id, logger=log, extra=extra)
        self._last = scheduled
        return past_due
