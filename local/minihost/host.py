"""Composition and lifecycle: settings -> environment -> app -> trigger adapters; start, stop, signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, TracebackType

from local.minihost.errors import ConfigError, MiniHostError
from local.minihost.http_server import DEFAULT_READ_TIMEOUT_SECONDS, HttpFrontend
from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import FunctionSpec, HttpTrigger, LoadedApp, QueueTrigger, TimerTrigger, load_app
from local.minihost.logs import fields, get_logger
from local.minihost.queue_poller import (
    DEFAULT_LEASE_SECONDS,
    ClientFactory,
    QueuePoller,
    default_client_factory,
)
from local.minihost.settings import (
    DEFAULT_HTTP_PORT,
    HostSettings,
    load_host_settings,
    load_local_settings,
)
from local.minihost.timers import TimerRunner

STORAGE_SETTING = "AzureWebJobsStorage"
log = get_logger("host")


class _EnvironmentPatch:
    """Changes to os.environ that `restore` undoes, so in-process hosts leave the process as they found it."""

    def __init__(self) -> None:
        self._original: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._original.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._original.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._original.clear()


class MiniHost:
    """A loaded app with its HTTP server, queue pollers and timers; `start()` and `stop()` drive them."""

    def __init__(
        self,
        loaded: LoadedApp,
        settings: HostSettings,
        *,
        http_host: str,
        http_port: int,
        function_keys: Mapping[str, str],
        grace_period: float,
        message_lease: float,
        client_factory: ClientFactory,
        environment: _EnvironmentPatch,
        previous_cwd: str | None,
        http_read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ) -> None:
        # As on Azure, a function is not run (an HTTP route answers 404, a queue is not polled, a
        # timer does not fire) when the app setting ``AzureWebJobs.<name>.Disabled`` is true, or
        # when host.json lists ``functions`` (local runs only) and it is not among them.
        self.disabled = sorted(
            spec.name
            for spec in loaded.functions
            if _disabled(spec.name) or (settings.functions and spec.name not in settings.functions)
        )
        self.functions: list[FunctionSpec] = [f for f in loaded.functions if f.name not in self.disabled]
        self.settings = settings
        self._loaded = loaded
        self._http_host = http_host
        self._requested_port = http_port
        self._grace = grace_period
        self._environment = environment
        self._previous_cwd = previous_cwd
        self._loop = EventLoopThread()
        invoker = Invoker(self._loop, timeout=settings.function_timeout)
        self._http = HttpFrontend(
            self.functions,
            route_prefix=settings.route_prefix,
            function_keys=function_keys,
            invoker=invoker,
            read_timeout=http_read_timeout,
        )
        self._pollers = [
            QueuePoller(
                spec, settings.queues, invoker, lease_seconds=message_lease, client_factory=client_factory
            )
            for spec in self.functions
            if isinstance(spec.trigger, QueueTrigger)
        ]
        self._timers = [
            TimerRunner(spec, invoker) for spec in self.functions if isinstance(spec.trigger, TimerTrigger)
        ]
        self._state = "created"
        self._lock = threading.Lock()

    @property
    def http_port(self) -> int:
        return self._http.port

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:7071" (add the route prefix, "/api", for function routes)."""
        return f"http://{self._http_host}:{self.http_port}"

    def start(self) -> MiniHost:
        """Listen for HTTP, start polling queues and running timers; returns once HTTP listens.

        Raises:
            ConfigError: the HTTP port is in use or cannot be bound.
        """
        with self._lock:
            if self._state != "created":
                raise MiniHostError(f"a host can be started once; this one is {self._state}")
            self._state = "running"
        self._loop.start()
        try:
            self._http.start(self._http_host, self._requested_port)
        except OSError as exc:
            self.stop()
            raise ConfigError(
                f"cannot listen on {self._http_host}:{self._requested_port}: {exc.strerror}; "
                "is another host running? Use another port (0 picks a free one)"
            ) from exc
        for poller in self._pollers:
            poller.start()
        for timer in self._timers:
            timer.start()
        log.info("host started: %d functions, %s", len(self.functions), self.base_url, extra=fields())
        return self

    def stop(self) -> None:
        """Stop polling and timers, let running invocations finish within the grace period, close HTTP."""
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
        deadline = time.monotonic() + self._grace
        for poller in self._pollers:
            poller.request_stop()
        for timer in self._timers:
            timer.request_stop()
        self._http.stop(self._grace)
        for poller in self._pollers:
            poller.wait(max(0.0, deadline - time.monotonic()))
        for timer in self._timers:
            timer.wait(max(0.0, deadline - time.monotonic()))
        self._loop.stop()
        self._loaded.unload()
        self._environment.restore()
        if self._previous_cwd is not None:
            os.chdir(self._previous_cwd)
        log.info("host stopped", extra=fields())

    def describe(self) -> str:
        """The function list as `func start` prints it."""
        lines = ["Functions:", ""]
        for spec in self.functions:
            trigger = spec.trigger
            if isinstance(trigger, HttpTrigger):
                methods = ",".join(sorted(trigger.methods)) if trigger.methods else "*"
                prefix = f"/{self.settings.route_prefix}" if self.settings.route_prefix else ""
                lines.append(f"  {spec.name}: [{methods}] {self.base_url}{prefix}/{trigger.route.template}")
            elif isinstance(trigger, QueueTrigger):
                lines.append(f"  {spec.name}: queueTrigger (queue {trigger.queue_name})")
            else:
                lines.append(f"  {spec.name}: timerTrigger ({trigger.schedule.expression})")
        lines += [f"  {name}: disabled" for name in self.disabled]
        return "\n".join(lines)

    def __enter__(self) -> MiniHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def create_host(
    app_ref: str = "function_app:app",
    *,
    app_dir: str | Path = ".",
    host_json: str | Path | None = None,
    settings_file: str | Path | None = None,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    environ: Mapping[str, str] | None = None,
    storage_connection_string: str | None = None,
    function_keys: Mapping[str, str] | None = None,
    grace_period: float = 10.0,
    message_lease: float = DEFAULT_LEASE_SECONDS,
    client_factory: ClientFactory = default_client_factory,
    http_read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
) -> MiniHost:
    """Read settings, prepare the environment, import the app and build its trigger adapters (not started).

    Settings precedence: `environ` and `storage_connection_string` override everything; then variables
    already in the environment; then local.settings.json Values. Relative paths are taken from the
    current directory; the app directory becomes the working directory until `stop()`.

    Raises:
        ConfigError: a settings file or argument is invalid.
        AppLoadError: the app cannot be imported.
        BindingError: a function uses something the mini-host cannot run.
    """
    app_path = Path(app_dir).resolve()
    if not app_path.is_dir():
        raise ConfigError(f"app directory {app_path} does not exist")
    host_path = Path(host_json).resolve() if host_json is not None else app_path / "host.json"
    settings_path = _settings_path(settings_file, app_path)
    settings = load_host_settings(host_path)
    local = load_local_settings(settings_path)
    port = _choose_port(http_port, local.http_port)
    environment = _EnvironmentPatch()
    for name, value in local.values.items():
        if name not in os.environ:  # like Core Tools: the real environment wins over local.settings.json
            environment.set(name, value)
    for name, value in (environ or {}).items():
        environment.set(name, value)
    if storage_connection_string is not None:
        environment.set(STORAGE_SETTING, storage_connection_string)
    previous_cwd = os.getcwd()
    os.chdir(app_path)
    try:
        loaded = load_app(app_ref, app_path, environ=os.environ)
    except BaseException:
        os.chdir(previous_cwd)
        environment.restore()
        raise
    return MiniHost(
        loaded,
        settings,
        http_host=http_host,
        http_port=port,
        function_keys=dict(function_keys if function_keys is not None else local.function_keys),
        grace_period=grace_period,
        message_lease=message_lease,
        client_factory=client_factory,
        environment=environment,
        previous_cwd=previous_cwd,
        http_read_timeout=http_read_timeout,
    )


def _disabled(function_name: str) -> bool:
    value = os.environ.get(f"AzureWebJobs.{function_name}.Disabled", "")
    return value.strip().lower() in ("true", "1")


def _settings_path(settings_file: str | Path | None, app_path: Path) -> Path | None:
    if settings_file is not None:
        return Path(settings_file).resolve()
    default = app_path / "local.settings.json"
    return default if default.exists() else None


def _choose_port(argument: int | None, from_settings: int | None) -> int:
    port = (
        argument
        if argument is not None
        else from_settings
        if from_settings is not None
        else DEFAULT_HTTP_PORT
    )
    if not 0 <= port <= 65535:
        raise ConfigError(f"http_port: expected 0-65535 (0 = a free port), found {port}")
    return port


def run_until_signalled(host: MiniHost, *, on_ready: Callable[[MiniHost], None] | None = None) -> None:
    """Start `host`, call `on_ready`, stop cleanly on SIGINT/SIGTERM (one more, 1 s later, exits at once)."""
    stopping = threading.Event()
    first_signal_at: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if first_signal_at:
            # A duplicate delivered with the first (a supervisor forwarding it) is not an impatient user.
            if time.monotonic() - first_signal_at[0] > 1.0:
                log.warning("second %s: exiting without waiting", name, extra=fields())
                os._exit(130)
            return
        first_signal_at.append(time.monotonic())
        stopping.set()
        log.info("%s received; stopping", name, extra=fields())

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        host.start()
        if on_ready is not None:
            on_ready(host)
        while not stopping.wait(1.0):
            pass
    finally:
        host.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
