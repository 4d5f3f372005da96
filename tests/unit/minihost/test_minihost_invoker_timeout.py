"""Invoker with host.json functionTimeout: overruns fail, async ones are cancelled, sync ones are let go."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import azure.functions as func
import pytest

from local.minihost.invoker import EventLoopThread, FunctionTimeoutError, Invoker
from local.minihost.loader import FunctionSpec, read_functions
from local.minihost.logs import InvocationFilter


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    thread = EventLoopThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def caplog_fields(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog with the invocation fields filled in, as configure_logging's handler does."""
    invocation_filter = InvocationFilter()
    caplog.handler.addFilter(invocation_filter)
    yield caplog
    caplog.handler.removeFilter(invocation_filter)  # pytest reuses the handler for later tests


def _spec(app: func.FunctionApp) -> FunctionSpec:
    (spec,) = read_functions(app, app_ref="t:app", directory="/app", environ={})
    return spec


def test_an_async_overrun_is_cancelled_and_fails_with_the_hosts_message(
    loop: EventLoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an async function that would sleep far longer than a 0.2 s timeout
    cancelled = threading.Event()
    app = func.FunctionApp()

    @app.route(route="slow")
    async def slow(req: func.HttpRequest) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "done"

    # WHEN it is invoked
    caplog.set_level(logging.INFO, logger="minihost")
    with pytest.raises(FunctionTimeoutError, match=r"Timeout value of 00:00:00.2000000 exceeded"):
        Invoker(loop, timeout=0.2).invoke(_spec(app), None, "inv-1")

    # THEN its task is cancelled (the function sees CancelledError) and the host logs Azure's error
    assert cancelled.wait(10)
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == (
        "Timeout value of 00:00:00.2000000 exceeded by function 'Functions.slow' (Id: 'inv-1'). "
        "Initiating cancellation."
    )
    assert (getattr(error, "function_name", None), getattr(error, "invocation_id", None)) == ("slow", "inv-1")


def test_a_sync_overrun_fails_at_once_while_its_thread_goes_on_with_its_log_context(
    loop: EventLoopThread, caplog_fields: pytest.LogCaptureFixture
) -> None:
    caplog = caplog_fields
    # GIVEN a sync function that blocks until released, logging and reading its context on its thread
    release, finished = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    app = func.FunctionApp()

    @app.route(route="stuck")
    def stuck(req: func.HttpRequest, context: func.Context) -> str:
        seen["thread"] = threading.current_thread().name
        seen["local_id"] = context.thread_local_storage.invocation_id
        logging.getLogger("fixture").info("working")
        release.wait(30)
        finished.set()
        return "late"

    caplog.set_level(logging.INFO)

    # WHEN it overruns a 0.2 s timeout
    try:
        with pytest.raises(FunctionTimeoutError, match=r"'Functions.stuck' \(Id: 'inv-2'\)"):
            Invoker(loop, timeout=0.2).invoke(_spec(app), None, "inv-2")
        # THEN the caller stopped waiting while the function is still running
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(10)
    # AND it ran on a thread of its own, whose log records and thread-local storage carry the invocation
    assert seen["thread"] == "function-stuck"
    assert seen["local_id"] == "inv-2"
    (working,) = [r for r in caplog.records if r.name == "fixture"]
    assert (working.function_name, working.invocation_id) == ("stuck", "inv-2")  # type: ignore[attr-defined]
    # AND the host warned that the thread could not be stopped
    assert any(r.levelno == logging.WARNING and "cannot be stopped" in r.getMessage() for r in caplog.records)


def test_functions_within_the_timeout_return_their_result(loop: EventLoopThread) -> None:
    app = func.FunctionApp()

    @app.route(route="quick")
    def quick(req: func.HttpRequest) -> str:
        return f"quick on {threading.current_thread().name}"

    spec = _spec(app)
    assert Invoker(loop, timeout=10).invoke(spec, None, "inv-3") == "quick on function-quick"
    # without a timeout a sync function runs on the calling thread, as before
    assert Invoker(loop).invoke(spec, None, "inv-4") == f"quick on {threading.current_thread().name}"


def test_a_timer_overrun_is_logged_as_a_failed_execution(
    loop: EventLoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an async timer function that overruns
    app = func.FunctionApp()

    @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
    async def hourly(timer: func.TimerRequest) -> None:
        await asyncio.sleep(30)

    # WHEN it is invoked as the timer runner does
    logger = logging.getLogger("minihost.timer")
    caplog.set_level(logging.INFO, logger="minihost")
    ok = Invoker(loop, timeout=0.2).invoke_logged(_spec(app), lambda: None, "inv-5", logger=logger, extra={})

    # THEN the execution is failed with the timeout as its reason
    assert ok is False
    (failed,) = [r for r in caplog.records if r.name == "minihost.timer"]
    assert failed.getMessage().startswith("Executed hourly (Failed, ")
    assert "FunctionTimeoutError: Timeout value of 00:00:00.2000000 exceeded" in failed.getMessage()


def test_work_submitted_while_the_loop_stops_is_cancelled_or_refused_never_left_waiting() -> None:
    # GIVEN a loop that threads keep submitting coroutines to, as queue pollers do
    from local.minihost.invoker import HostStoppingError

    loop_thread = EventLoopThread()
    loop_thread.start()
    futures: list[Future[object]] = []
    refused = threading.Event()
    stop_now = threading.Event()

    async def work() -> str:
        await asyncio.sleep(30)
        return "done"

    def submitter() -> None:
        while not refused.is_set():
            try:
                futures.append(loop_thread.submit(work()))
            except HostStoppingError:
                refused.set()
            if len(futures) == 50:
                stop_now.set()

    threads = [threading.Thread(target=submitter) for _ in range(4)]
    for thread in threads:
        thread.start()
    stop_now.wait(5)

    # WHEN the loop stops in the middle of that
    loop_thread.stop()
    for thread in threads:
        thread.join(5)

    # THEN every future it accepted has ended (cancelled), and later submissions were refused
    assert refused.is_set()
    assert futures
    assert all(f.done() for f in futures), sum(not f.done() for f in futures)
    assert all(f.cancelled() or isinstance(f.exception(), asyncio.CancelledError) for f in futures)


def test_an_invocation_that_outlives_the_stop_fails_at_once_and_the_stop_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN an async function that goes on for seconds after it is cancelled, invoked with a long
    # functionTimeout
    loop_thread = EventLoopThread()
    loop_thread.start()
    app = func.FunctionApp()
    running = threading.Event()

    @app.route(route="stubborn")
    async def stubborn(req: func.HttpRequest) -> str:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(5))  # cleanup that outlasts the host's patience
        return "done"

    caplog.set_level(logging.INFO, logger="minihost")
    invoker = Invoker(loop_thread, timeout=300.0)
    outcome: list[bool] = []
    caller = threading.Thread(
        target=lambda: outcome.append(
            invoker.invoke_logged(
                _spec(app), lambda: None, "inv-s", logger=logging.getLogger("minihost.t"), extra={}
            )
        )
    )
    caller.start()
    assert running.wait(10)

    # WHEN the host stops with a short grace
    loop_thread.stop(timeout=0.3)
    caller.join(5)

    # THEN the caller does not wait for functionTimeout: the invocation failed (its message comes
    # back), logged without a traceback, and the stop named where the task was
    assert not caller.is_alive()
    assert outcome == [False]
    (done,) = [r for r in caplog.records if r.getMessage().startswith("Executed stubborn")]
    assert done.getMessage().endswith("cancelled, the host is stopping")
    assert done.exc_info is None
    (stuck,) = [r for r in caplog.records if "did not wind down" in r.getMessage()]
    assert "stubborn" in stuck.getMessage() or "_call_async" in stuck.getMessage()
    assert "test_minihost_invoker_timeout.py" in stuck.getMessage()
