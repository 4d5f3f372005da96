"""Reachability checks shared by `GET /api/health` and `waveguard doctor`: settings, config, storage, Graph.

Overall status: ``healthy`` when every check passes; ``degraded`` when only Graph is unreachable
(HR webhooks are still accepted and queued; workers retry until Graph answers); ``unhealthy`` when
the settings, the plan or storage fail (nothing can be accepted or done).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Final, Literal

import httpx

from shared.config import Settings, load_settings
from shared.errors import ConfigError

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
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        results = list(pool.map(lambda probe: probe(settings), probes))
    return HealthReport(tuple(results))
