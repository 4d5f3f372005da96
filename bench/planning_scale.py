"""Wave planning at tenant scale: time, client CPU per user and peak memory at 1k, 10k and 100k users.

For each size a fresh Graph emulator runs in a process of its own (so this process measures only
WaveGuard), seeded with ``--seed empty --users N`` (``N`` users over the demo departments), plus the
break-glass accounts and their exclusion group and an empty wave group whose selectors take every
department. ``start_wave_sync`` then plans the wave as the rollout timer does
(read the users and the group, match the selectors, diff, chunk the writes onto ``wave-work``,
which is captured here and not applied). Measured twice: once for wall time and this thread's CPU
(``time.thread_time``: the HTTP client and the planning, not the emulator), once under
``tracemalloc`` for the peak of memory allocated. Goal: linear, at most 20 µs of client CPU per
user: the cost of each user beyond the first thousand (``cpu_us_per_added_user``, between 1k and
100k) and the cost per user at 100k, with the 100k figure no worse than 1.5 x the 10k one. (At 1k,
the per-user figure is mostly the planning's fixed cost: the client, the plan, the break-glass
reads.)
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from typing import Final

import httpx

from bench.emulator_process import emulator_process
from bench.membership_sync import _PLAN_ENV, PLAN_PATH, _add_break_glass, _Queue
from local.graph_emulator.seed import DEPARTMENTS
from shared.config import Wave, load_plan, load_settings
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.rollout.membership import MembershipWriter, SyncDeps, start_wave_sync
from shared.state import build_memory_state

SIZES: Final = (1_000, 10_000, 100_000)
CPU_GOAL_US: Final = 20.0
LINEAR_GOAL: Final = 1.5
_GROUP: Final = "WaveGuard - Bench Scale"


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    for size in SIZES:
        for key, value in _one(size).items():
            figures[f"{key}_{size // 1000}k"] = value
    small, big = SIZES[0], SIZES[-1]
    added = figures[f"cpu_s_{big // 1000}k"] - figures[f"cpu_s_{small // 1000}k"]
    figures["cpu_us_per_added_user"] = round(added / (big - small) * 1e6, 2)
    figures["cpu_per_user_growth"] = round(
        figures[f"cpu_us_per_user_{big // 1000}k"] / figures[f"cpu_us_per_user_{SIZES[-2] // 1000}k"], 2
    )
    return figures


def meets_targets(figures: dict[str, float]) -> bool:
    return (
        figures["cpu_us_per_added_user"] <= CPU_GOAL_US
        and figures[f"cpu_us_per_user_{SIZES[-1] // 1000}k"] <= CPU_GOAL_US
        and figures["cpu_per_user_growth"] <= LINEAR_GOAL
    )


def _one(size: int) -> dict[str, float]:
    with emulator_process("--seed", "empty", "--users", str(size)) as base:  # seeding 100k takes seconds
        return asyncio.run(_measure(base, size))


async def _measure(base: str, size: int) -> dict[str, float]:
    environ = {
        "GRAPH_BASE_URL": f"{base}/v1.0",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        **_PLAN_ENV,
    }
    plan = load_plan(PLAN_PATH, environ)
    admin = f"{base}/_emulator"
    async with httpx.AsyncClient(timeout=120) as http:
        await _add_break_glass(http, admin, plan)
        (await http.post(f"{admin}/groups", json={"displayName": _GROUP})).raise_for_status()
    wave = Wave.model_validate(
        {
            "name": "bench",
            "group": {"displayName": _GROUP},
            "selectors": {"departments": list(DEPARTMENTS)},
            "blastRadius": 10_000_000,
        }
    )
    settings = load_settings(environ)

    async def plan_once() -> int:
        client = build_graph_client(settings)
        queue = _Queue()
        deps = SyncDeps(
            plan=plan.model_copy(update={"waves": [wave]}),
            graph=client,
            writer=MembershipWriter(BatchClient.for_graph(client)),
            state=build_memory_state().aio,
            queues=queue,
        )
        await start_wave_sync(deps, "bench", correlation_id="bench")
        return len(queue.sent)

    await plan_once()  # warm: imports, the first model parse
    wall, cpu = time.perf_counter(), time.thread_time()
    chunks = await plan_once()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    tracemalloc.start()
    try:
        await plan_once()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "plan_s": round(wall, 3),
        "cpu_s": round(cpu, 4),
        "cpu_us_per_user": round(cpu / size * 1e6, 2),
        "peak_mb": round(peak / 1e6, 1),
        "chunks": float(chunks),
    }


if __name__ == "__main__":
    print(json.dumps({"planning_scale": run()}, indent=2), flush=True)
