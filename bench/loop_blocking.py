"""Is the worker's event loop ever blocked? A rollout timer tick and HR queue invocations share one loop.

In Azure every async function of a worker process runs on one event loop: a blocking call in any
of them (a synchronous Azure Tables read, say) stalls all the others. This scenario runs one
timer tick (wave evaluation, a wave transition, its membership sync and the CA policy sync) at
the same time as several ``hr-events`` invocations (hires: wave group, TAP, draft, send) on one
loop, against Azurite and the Graph emulator, with a heartbeat task ticking every 5 ms:

- ``max_gap_ms``: the longest the heartbeat waited beyond its interval (wall clock; includes the
  machine's own scheduling and the other threads holding the GIL);
- ``max_cpu_gap_ms``: the most CPU time the loop's thread spent between two heartbeats: work that
  kept the loop from serving anything else, independent of how loaded the machine is;
- ``loop_thread_calls``: storage and queue calls made on the loop's thread (each one blocks it for
  a network round trip); the stores and the sender offload every call, so this must be 0.

The first round (imports, clients, Graph's lazy model loading) is a warm-up and is not measured.
Before the measured round the garbage collector is run and what survives is frozen: run inside a
test process that has built up a large heap, a full collection of that heap (100 ms and more of
the loop thread's CPU) would otherwise land in a heartbeat gap and be counted as our code's.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from local.demo_waves import reset_rollout_state
from shared.config import Settings, load_plan_for, load_settings
from shared.envelope import Envelope
from shared.offload import Offload, to_thread
from shared.onboarding.worker import ACTOR, hr_routes, settle
from shared.pipeline import PipelineDeps, handle_envelope
from shared.queues import AsyncQueueSender, QueueSender
from shared.rollout.lifecycle import run_timer_tick
from shared.services import Services
from shared.state import StateStores, build_state

LIMIT_MS = 50.0
HEARTBEAT_SECONDS = 0.005
HIRES = 6


@dataclass
class LoopFigures:
    """What one measured round saw (see the module docstring)."""

    max_gap_ms: float = 0.0
    p99_gap_ms: float = 0.0
    max_cpu_gap_ms: float = 0.0
    heartbeats: int = 0
    loop_thread_calls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, float]:
        return {
            "max_gap_ms": round(self.max_gap_ms, 2),
            "p99_gap_ms": round(self.p99_gap_ms, 2),
            "max_cpu_gap_ms": round(self.max_cpu_gap_ms, 2),
            "max_gap_over_limit": round(self.max_gap_ms / LIMIT_MS, 3),
            "max_cpu_gap_over_limit": round(self.max_cpu_gap_ms / LIMIT_MS, 3),
            "heartbeats": float(self.heartbeats),
            "loop_thread_calls": float(len(self.loop_thread_calls)),
        }


class _LoopThreadGuard:
    """Wraps a synchronous store or sender; notes every call made on the event loop's thread."""

    def __init__(self, inner: Any, name: str, loop_thread: Callable[[], int | None], seen: list[str]) -> None:
        self._inner, self._name, self._loop_thread, self._seen = inner, name, loop_thread, seen

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._inner, attribute)
        if not callable(value) or attribute.startswith("_"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._loop_thread():
                self._seen.append(f"{self._name}.{attribute}")
            return value(*args, **kwargs)

        return call


def guarded_services(
    settings: Settings,
    seen: list[str],
    loop_thread: Callable[[], int | None],
    *,
    offload: Offload = to_thread,
) -> Services:
    """Production services for ``settings`` (fresh tables), each store and the sender behind the guard."""
    stores = build_state(settings, table_prefix=f"loop{uuid.uuid4().hex[:8]}")
    guarded = StateStores(
        idempotency=_LoopThreadGuard(stores.idempotency, "idempotency", loop_thread, seen),  # type: ignore[arg-type]
        kv=_LoopThreadGuard(stores.kv, "kv", loop_thread, seen),  # type: ignore[arg-type]
        audit=_LoopThreadGuard(stores.audit, "audit", loop_thread, seen),  # type: ignore[arg-type]
        offload=offload,
    )
    sender = _LoopThreadGuard(QueueSender.from_settings(settings), "queue", loop_thread, seen)
    return Services(
        settings=settings,
        plan=load_plan_for(settings),
        stores=guarded,
        queues=AsyncQueueSender(sender, offload),  # type: ignore[arg-type]
    )


def hire_bodies(admin_url: str, count: int, manager: dict[str, Any]) -> list[str]:
    """``count`` new Finance hires created in the emulator, as ``hr-events`` message bodies."""
    bodies = []
    with httpx.Client(timeout=30) as http:
        for _ in range(count):
            employee = f"L{uuid.uuid4().hex[:8]}"
            upn = f"{employee.lower()}@contoso.com"
            user = {
                "userPrincipalName": upn,
                "mail": upn,
                "displayName": "Loop Probe",
                "employeeId": employee,
                "department": "Finance",
                "country": "GB",
                "manager": manager["id"],
            }
            http.post(f"{admin_url}/users", json=user).raise_for_status()
            payload = {
                "type": "employee.hired",
                "timestamp": "2026-11-30T08:00:00Z",
                "data": {
                    "employeeId": employee,
                    "userPrincipalName": upn,
                    "displayName": "Loop Probe",
                    "department": "Finance",
                    "country": "GB",
                    "managerUserPrincipalName": manager["userPrincipalName"],
                },
            }
            bodies.append(
                Envelope(type="employee.hired", payload=payload, id=f"loop-{uuid.uuid4().hex}").to_json()
            )
    return bodies


async def _work(services: Services, bodies: list[str]) -> None:
    deps = PipelineDeps("hr-events", ACTOR, services.state, services.queues, services.clock)
    routes = hr_routes(services.onboarding)
    await asyncio.gather(
        run_timer_tick(services.lifecycle, services.queues, correlation_id=f"loop-{uuid.uuid4().hex}"),
        *(handle_envelope(body, routes, deps, on_permanent=settle) for body in bodies),
    )


async def measure(services: Services, bodies: list[str]) -> LoopFigures:
    """Run one timer tick and the ``bodies`` on this loop under a heartbeat; the figures."""
    figures = LoopFigures()
    done = asyncio.Event()
    gaps: list[float] = []

    async def heartbeat() -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        while not done.is_set():
            await asyncio.sleep(HEARTBEAT_SECONDS)
            now_wall, now_cpu = time.perf_counter(), time.thread_time()
            gaps.append(max(0.0, now_wall - wall - HEARTBEAT_SECONDS) * 1000)
            figures.max_cpu_gap_ms = max(figures.max_cpu_gap_ms, (now_cpu - cpu) * 1000)
            wall, cpu = now_wall, now_cpu

    beat = asyncio.create_task(heartbeat())
    try:
        await _work(services, bodies)
    finally:
        done.set()
        await beat
    figures.heartbeats = len(gaps)
    figures.max_gap_ms = max(gaps, default=0.0)
    figures.p99_gap_ms = statistics.quantiles(gaps, n=100)[98] if len(gaps) >= 100 else figures.max_gap_ms
    return figures


def run_scenario(
    environ: dict[str, str], admin_url: str, manager: dict[str, Any], *, offload: Offload = to_thread
) -> LoopFigures:
    """Warm up once, then measure one round; storage/queue calls on the loop thread are in the figures.

    ``offload`` is how the stores and the sender run their calls (``direct``: on the loop, to show
    what the guard catches).
    """
    seen: list[str] = []
    loop_thread: list[int] = []
    services = guarded_services(
        load_settings(environ), seen, lambda: loop_thread[0] if loop_thread else None, offload=offload
    )

    async def rounds() -> LoopFigures:
        loop_thread.append(threading.get_ident())
        await _work(services, hire_bodies(admin_url, 1, manager))  # warm-up: imports, clients, lazy models
        # The measured tick starts the pilot again: a transition, its membership sync, the policy sync.
        await reset_rollout_state(services.state.kv, services.plan)
        seen.clear()
        gc.collect()
        gc.freeze()  # the heap the process had before the round is not the round's work
        try:
            figures = await measure(services, hire_bodies(admin_url, HIRES, manager))
        finally:
            gc.unfreeze()
        figures.loop_thread_calls = list(seen)
        return figures

    return asyncio.run(rounds())


def run() -> dict[str, float]:
    """`make bench`: the scenario on its own Azurite and emulator."""
    from local.azurite import start_azurite
    from local.graph_emulator import start_emulator
    from tests.conftest import PLAN_SECRETS

    azurite = start_azurite()
    emulator = start_emulator(port=0, seed="demo")
    try:
        environ = {
            "AzureWebJobsStorage": azurite.connection_string,
            "GRAPH_BASE_URL": emulator.base_url,
            "WAVEGUARD_CONFIG": "config/waveguard.yaml",
            **PLAN_SECRETS,
        }
        manager = httpx.get(f"{emulator.base_url}/users/{emulator.demo.head_ids['Finance']}").json()
        return run_scenario(environ, emulator.admin_url, manager).to_dict()
    finally:
        emulator.stop()
        azurite.stop()
