"""Reachability checks shared by `GET /api/health` and `waveguard doctor`: config, storage, Graph."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import httpx

from shared.config import Settings

__all__ = ["CheckResult", "HealthReport", "check_config", "check_graph", "check_health", "check_storage"]

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

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: overall status plus one entry per check."""
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.checks},
        }


def _timed(name: str, probe: Callable[[], str]) -> CheckResult:
    start = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # a probe reports every failure, whatever its type
        detail, ok = f"{type(exc).__name__}: {exc}"[:2000], False
    return CheckResult(name, ok, detail, round((time.perf_counter() - start) * 1000, 1))


def check_config(settings: Settings) -> CheckResult:
    """Load and validate the rollout plan file."""
    from shared.config import load_plan

    def probe() -> str:
        plan = load_plan(settings.config_path, settings.environ)
        accounts = len(plan.break_glass.accounts)
        return f"{settings.config_path.name}: {len(plan.waves)} waves, {accounts} break-glass accounts"

    return _timed("config", probe)


def check_storage(settings: Settings, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> CheckResult:
    """Reach the queue service (Azurite locally) and read its properties."""
    from shared.queues import queue_service_client

    def probe() -> str:
        client = queue_service_client(settings.storage.require(), timeout=timeout)
        client.get_service_properties(timeout=int(max(1, timeout)))
        return f"queue service reachable at {client.url.split('?')[0]}"

    return _timed("storage", probe)


def check_graph(settings: Settings, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> CheckResult:
    """Reach Graph's endpoint over HTTP; any answer below 500 means it is reachable.

    Plain HTTP on purpose: the health route is on the ingress path, which never loads msgraph.
    """

    def probe() -> str:
        url = settings.graph_base_url.rstrip("/") + "/$metadata"
        response = httpx.get(url, timeout=timeout)
        if response.status_code >= 500:
            raise ConnectionError(f"{settings.graph_base_url} answered HTTP {response.status_code}")
        return f"reachable: {settings.graph_base_url}"

    return _timed("graph", probe)


def check_health(settings: Settings) -> HealthReport:
    """Run the config, storage and Graph checks concurrently."""
    probes = (check_config, check_storage, check_graph)
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        results = list(pool.map(lambda probe: probe(settings), probes))
    return HealthReport(tuple(results))
