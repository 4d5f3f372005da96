"""Reachability checks shared by `GET /api/health` and `waveguard doctor`: settings, config, storage, Graph.

Overall status: ``healthy`` when every check passes; ``degraded`` when only Graph is unreachable
(HR webhooks are still accepted and queued; workers retry until Graph answers); ``unhealthy`` when
the settings, the plan or storage fail (nothing can be accepted or done).

A check is cheap enough to be polled: the plan is validated again only when its file (or the
environment it reads) changed, the storage probe's client and the Graph probe's HTTP client are
kept per process (a new client per call costs a connection and ~25 ms), and the three checks run
at once on a small pool that stays.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import httpx

from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.tls import httpx_tls

if TYPE_CHECKING:
    from azure.storage.queue import QueueServiceClient

__all__ = [
    "CheckResult",
    "HealthReport",
    "HealthStatus",
    "check_config",
    "check_graph",
    "check_health",
    "check_health_from_environment",
    "check_storage",
]

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
# Checks whose failure only degrades the app: everything else makes it unhealthy.
_DEGRADING: Final = frozenset({"graph"})

PROBE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: what was checked, whether it passed, and a line saying why."""

    name: str
    ok: bool
    detail: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check's outcome; healthy only when all passed."""

    checks: tuple[CheckResult, ...]

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def status(self) -> HealthStatus:
        """healthy, degraded (only Graph failing) or unhealthy."""
        failed = {c.name for c in self.checks if not c.ok}
        if not failed:
            return "healthy"
        return "degraded" if failed <= _DEGRADING else "unhealthy"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: overall status plus one entry per check (for callers holding a key)."""
        return {
            "status": self.status,
            "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.checks},
        }

    def to_public_dict(self) -> dict[str, object]:
        """JSON-ready for anonymous callers: the overall status only, nothing about the set-up."""
        return {"status": self.status}


def _timed(name: str, probe: Callable[[], str]) -> CheckResult:
    start = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # a probe reports every failure, whatever its type
        detail, ok = f"{type(exc).__name__}: {exc}"[:2000], False
    return CheckResult(name, ok, detail, round((time.perf_counter() - start) * 1000, 1))


def check_config(settings: Settings) -> CheckResult:
    """Load and validate the rollout plan file (again only when the file or the environment changed)."""

    def probe() -> str:
        return _plan_summary(settings.config_path, settings.environ)

    return _timed("config", probe)


_plan_lock = threading.Lock()
_plan_seen: dict[tuple[Any, ...], str] = {}


def _plan_summary(path: Path, environ: Mapping[str, str]) -> str:
    from shared.config import load_plan

    stat = path.stat()  # a missing file fails here, as loading it would
    key = (str(path), stat.st_mtime_ns, stat.st_size, hash(frozenset(environ.items())))
    with _plan_lock:
        known = _plan_seen.get(key)
    if known is not None:
        return known
    plan = load_plan(path, environ)  # a plan that fails is never remembered: checked every time
    summary = f"{path.name}: {len(plan.waves)} waves, {len(plan.break_glass.accounts)} break-glass accounts"
    with _plan_lock:
        _plan_seen.clear()  # one plan at a time
        _plan_seen[key] = summary
    return summary


def check_storage(settings: Settings, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> CheckResult:
    """Reach the queue service (Azurite locally) and read its properties."""

    def probe() -> str:
        storage = settings.storage.require()
        client = _storage_probe(
            storage.connection_string, storage.queue_service_uri, storage.client_id, timeout
        )
        _once_more_if_reset(lambda: client.get_service_properties(timeout=int(max(1, timeout))))
        return f"queue service reachable at {client.url.split('?')[0]}"

    return _timed("storage", probe)


@functools.lru_cache(maxsize=4)
def _storage_probe(
    connection_string: str | None, queue_service_uri: str | None, client_id: str | None, timeout: float
) -> QueueServiceClient:
    """The probe's queue client, kept per storage account (its connection stays open)."""
    from shared.config.settings import StorageSettings
    from shared.queues import queue_service_client

    storage = StorageSettings(
        connection_string=connection_string, queue_service_uri=queue_service_uri, client_id=client_id
    )
    return queue_service_client(storage, timeout=timeout)


# A resource that needs a token, asked for without one: Graph answers 401 with a few hundred bytes.
# (Its ``$metadata``, which needs none, is a schema of several megabytes: too much for every poll.)
GRAPH_PROBE_PATH: Final = "/organization?$select=id"


def check_graph(settings: Settings, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> CheckResult:
    """Reach Graph's endpoint over HTTP; any answer below 500 (a 401 included) means it is reachable.

    Plain HTTP without a token on purpose: the health route is on the ingress path, which never
    loads msgraph or asks for a token.
    """

    def probe() -> str:
        url = settings.graph_base_url.rstrip("/") + GRAPH_PROBE_PATH
        response = _once_more_if_reset(lambda: _http().get(url, timeout=timeout))
        if response.status_code >= 500:
            raise ConnectionError(f"{settings.graph_base_url} answered HTTP {response.status_code}")
        return f"reachable: {settings.graph_base_url}"

    return _timed("graph", probe)


def check_health_from_environment() -> HealthReport:
    """``check_health`` for the process environment; invalid settings are a failed ``settings``
    check naming each variable at fault (never raises)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        return HealthReport((CheckResult("settings", False, "; ".join(exc.problems), 0.0),))
    return check_health(settings)


def check_health(settings: Settings) -> HealthReport:
    """Run the config, storage and Graph checks concurrently."""
    probes = (check_config, check_storage, check_graph)
    results = list(_pool().map(lambda probe: probe(settings), probes))
    return HealthReport(tuple(results))


def _once_more_if_reset[T](call: Callable[[], T]) -> T:
    """``call()``, once more if the kept connection turned out closed (the server dropped it while
    idle): a probe reports the service, not a stale socket. A timeout is not repeated."""
    from azure.core.exceptions import (
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )

    try:
        return call()
    except (httpx.TimeoutException, ServiceRequestTimeoutError, ServiceResponseTimeoutError):
        raise
    except (httpx.TransportError, ServiceRequestError, ServiceResponseError):
        return call()


@functools.cache
def _http() -> httpx.Client:
    """One HTTP client for the Graph probe, kept (its connection pool with it)."""
    return httpx.Client(follow_redirects=False, verify=httpx_tls())


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=6, thread_name_prefix="waveguard-health")
