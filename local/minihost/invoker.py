"""Call user functions like the Python worker: sync ones on the calling thread, async ones on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import CancelledError, Future, InvalidStateError, wait
from typing import Any

import azure.functions as func
from azure.functions import _abc as azf_abc

from local.minihost.loader import FunctionSpec
from local.minihost.logs import fields, get_logger, invocation_scope
from local.minihost.settings import format_timespan

log = get_logger("invoker")


class HostStoppingError(RuntimeError):
    """The host stops under an invocation: asked for while it stops (never started), or still
    running when the stop gave up waiting for it. Either way it failed, so its message comes back."""


class EventLoopThread:
    """One asyncio loop on a dedicated thread, shared by every async function (as in the Python worker)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="minihost-asyncio", daemon=True)
        self._started = False
        self._stopping = False
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()  # submitted, not yet ended

    @property
    def stopping(self) -> bool:
        """True once ``stop`` began: what is cancelled now was cancelled by the host's shutdown."""
        return self._stopping

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Schedule `coroutine` on the loop; the returned future resolves with its result.

        Raises:
            HostStoppingError: the loop is stopping. A coroutine scheduled after the stop's
                cancellation would never run, and its caller would wait on it forever.
        """
        with self._lock:  # scheduled before the stop's cancellation, or refused
            if self._stopping:
                coroutine.close()
                raise HostStoppingError("the host is stopping: no new invocations start")
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            self._pending.add(future)
        future.add_done_callback(self._ended)
        return future

    def _ended(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new work, cancel what is still running, stop the loop and join its thread."""
        with self._lock:
            if not self._started or self._stopping or self._loop.is_closed():
                return
            self._stopping = True
        stuck: list[str] = []
        try:
            asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(timeout)
        except TimeoutError:
            # Sync work blocks the loop, or a task does not end when cancelled: leave the daemon thread.
            stuck = self._describe_tasks()
            log.warning(
                "the event loop did not wind down within %.1f s; still running: %s",
                timeout,
                "; ".join(stuck) or "(the loop is blocked)",
            )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
        # What never ended would keep its invoker waiting until functionTimeout: it fails now, so
        # its message comes back as on a host that shuts down.
        with self._lock:
            pending, self._pending = list(self._pending), set()
        for future in pending:
            with contextlib.suppress(InvalidStateError):  # it ended (or a timeout cancelled it) meanwhile
                future.set_exception(HostStoppingError("the host stopped before this invocation ended"))

    def _describe_tasks(self) -> list[str]:
        """Where each task still on the loop waits (its innermost frame outside asyncio), read from
        this thread: best effort, the loop may be changing them."""
        try:
            tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        except RuntimeError:  # the set changed while read
            return []
        where = []
        for task in tasks:
            name = getattr(task.get_coro(), "__qualname__", task.get_name())
            if name == "EventLoopThread._cancel_all":
                continue
            where.append(f"{name} at {_innermost_place(task.get_coro())}")
        return where[:10]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @staticmethod
    async def _cancel_all(rounds: int = 3) -> None:
        """Cancel every other task, again for tasks that cancelled ones started on their way out."""
        current = asyncio.current_task()
        for _ in range(rounds):
            tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
            if not tasks:
                return
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _innermost_place(coroutine: object) -> str:
    """file:line where a suspended coroutine waits, following its awaits down to the last frame
    outside asyncio itself."""
    place = "asyncio's own code"
    for _ in range(100):  # (an await chain is short; a cycle is impossible, but stay bounded)
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is None:
            break
        if f"{os.sep}asyncio{os.sep}" not in frame.f_code.co_filename:
            place = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    return place


class _TraceContext(azf_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(azf_abc.RpcException):
    """The mini-host has no retry policies, so a retry context never carries an exception."""

    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(azf_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> azf_abc.RpcException:
        return _NoException()


class InvocationContext(func.Context):
    """The `context` argument the Python worker passes to functions that declare one."""

    def __init__(self, spec: FunctionSpec, invocation_id: str) -> None:
        self._spec = spec
        self._invocation_id = invocation_id
        self._local = threading.local()
        self._local.invocation_id = invocation_id
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._spec.name

    @property
    def function_directory(self) -> str:
        return self._spec.directory

    @property
    def trace_context(self) -> azf_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> azf_abc.RetryContext:
        return self._retry


def new_invocation_id() -> str:
    return str(uuid.uuid4())


class FunctionTimeoutError(Exception):
    """An invocation ran longer than host.json's `functionTimeout`; it counts as failed."""


class Invoker:
    """Runs one invocation of a function and returns what it returned (exceptions propagate).

    With a `timeout` (host.json `functionTimeout`, seconds) an invocation that overruns fails with
    FunctionTimeoutError: an async one is cancelled on the loop; a sync one runs on a thread of its own
    so the caller can stop waiting, but Python cannot stop that thread, so it goes on in the background
    (Azure would recycle the worker process instead).
    """

    def __init__(self, loop: EventLoopThread, *, timeout: float | None = None) -> None:
        self._loop = loop
        self._timeout = timeout

    def invoke(self, spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> Any:
        """Call `spec.func` with its trigger argument (and `context`), blocking until it finishes.

        Raises:
            FunctionTimeoutError: it ran longer than the timeout.
        """
        future: Future[Any]
        if spec.is_async:
            kwargs = self._kwargs(spec, trigger_value, invocation_id)
            future = self._loop.submit(self._call_async(spec, kwargs, invocation_id))
        elif self._timeout is None:
            return self._call_sync(spec, trigger_value, invocation_id)
        else:
            future = Future()
            thread = threading.Thread(
                target=self._call_sync_into,
                args=(future, spec, trigger_value, invocation_id),
                name=f"function-{spec.name}",
                daemon=True,
            )
            thread.start()
        if wait([future], self._timeout).done or self._finished_anyway(spec, future):
            return future.result()
        raise self._timed_out(spec, invocation_id)

    @staticmethod
    def _finished_anyway(spec: FunctionSpec, future: Future[Any]) -> bool:
        """Cancel an async overrun (its task on the loop); True only if it succeeded just before."""
        if spec.is_async and not future.cancel():
            return future.done() and future.exception() is None
        return False

    def _timed_out(self, spec: FunctionSpec, invocation_id: str) -> FunctionTimeoutError:
        timeout = format_timespan(self._timeout or 0.0)
        message = (
            f"Timeout value of {timeout} exceeded by function 'Functions.{spec.name}' (Id: '{invocation_id}')"
        )
        extra = fields(spec.name, invocation_id)
        log.error("%s. Initiating cancellation.", message, extra=extra)
        if not spec.is_async:
            log.warning(
                "%s cannot be stopped: its thread goes on in the background (Azure would restart the worker)",
                spec.name,
                extra=extra,
            )
        return FunctionTimeoutError(message)

    def invoke_logged(
        self,
        spec: FunctionSpec,
        trigger_value: Callable[[], Any],
        invocation_id: str,
        *,
        logger: logging.Logger,
        extra: dict[str, str],
    ) -> bool:
        """Invoke like the Functions host logs it: "Executed NAME (Succeeded|Failed, N ms)"; True on success.

        ``trigger_value`` is built inside the timed block, so a message that cannot be decoded
        counts as a failed invocation, as on Azure.
        """
        started = time.perf_counter()
        try:
            self.invoke(spec, trigger_value(), invocation_id)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            if self._loop.stopping and isinstance(exc, CancelledError | HostStoppingError):
                # The shutdown's own doing, not the function's: no traceback to read.
                logger.warning(
                    "Executed %s (Failed, %.0f ms): cancelled, the host is stopping",
                    spec.name,
                    elapsed,
                    extra=extra,
                )
                return False
            logger.exception(
                "Executed %s (Failed, %.0f ms): %s: %s",
                spec.name,
                elapsed,
                type(exc).__name__,
                exc,
                extra=extra,
            )
            return False
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("Executed %s (Succeeded, %.0f ms)", spec.name, elapsed, extra=extra)
        return True

    @staticmethod
    def _kwargs(spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {spec.trigger_parameter: trigger_value}
        if spec.context_parameter:
            # Built on the thread that runs a sync function: context.thread_local_storage is per thread.
            kwargs[spec.context_parameter] = InvocationContext(spec, invocation_id)
        return kwargs

    def _call_sync(self, spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> Any:
        with invocation_scope(spec.name, invocation_id):
            return spec.func(**self._kwargs(spec, trigger_value, invocation_id))

    def _call_sync_into(
        self, future: Future[Any], spec: FunctionSpec, trigger_value: Any, invocation_id: str
    ) -> None:
        try:
            future.set_result(self._call_sync(spec, trigger_value, invocation_id))
        except BaseException as exc:
            future.set_exception(exc)

    @staticmethod
    async def _call_async(spec: FunctionSpec, kwargs: dict[str, Any], invocation_id: str) -> Any:
        # The scope is entered inside the task so the loop thread's log records carry the ids.
        with invocation_scope(spec.name, invocation_id):
            return await spec.func(**kwargs)
