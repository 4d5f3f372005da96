"""Benchmark: a wave membership sync of 5,000 users against the Graph emulator's write budget,
and the naive baseline (one ``POST /groups/{id}/members/$ref`` per user) in the same run.

The emulator runs in-process with Graph's identity write budget scaled in time by
``TIME_SCALE`` (100: 30 writes per 1.5 s; the refill rate stays Graph's 20 writes/s, only the
bucket is smaller, so the budget binds on 250 writes) and fractional Retry-After (Graph's
documented ``2.128`` form). Every ``$batch`` item that writes takes a token; the envelope does not.

Figures (all measured, nothing assumed):

- ``writes_per_member``: write requests Graph charged (PATCH/POST/DELETE items not answered 429,
  from the emulator's request log) / members. Floor 0.05 (one PATCH of 20), naive 1.0.
- ``write_attempts_per_member``: the same including items answered 429.
- ``round_trips``: top-level HTTP requests of the write phase (a ``$batch`` counts once).
- ``floor_seconds`` = max(ceil(members / 20) / rate, network floor), rate = capacity / perSeconds
  of the budget (20/s), network floor = ceil(members / 400) batches x the median round trip of a
  one-item request. ``wall_over_floor`` = wall time of the write phase (all ``wave-work`` chunks,
  planning excluded; reported apart as ``plan_seconds``) / floor_seconds. The bucket starts full,
  so ``wall_over_strict_floor`` also divides by (writes - capacity) / rate, the least time the
  writes can take once the initial burst is spent.
- ``throttled``: 429 answers received. The naive baseline runs on ``NAIVE_SAMPLE`` users with the
  same budget (full bucket) and its figures per member are extrapolated to ``members``;
  ``naive_over_waveguard`` compares writes per member and (extrapolated) wall time.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Final

import httpx

from local.graph_emulator import start_emulator
from local.graph_emulator.throttle import WriteBudget
from shared.config import RolloutPlan, Wave, load_plan, load_settings
from shared.envelope import Envelope
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.names import WAVE_WORK
from shared.rollout.membership import MembershipWriter, SyncDeps, process_wave_work, start_wave_sync
from shared.state import build_memory_state

MEMBERS: Final = int(os.environ.get("BENCH_SYNC_MEMBERS", "5000"))
NAIVE_SAMPLE: Final = int(os.environ.get("BENCH_NAIVE_SAMPLE", "400"))
TIME_SCALE: Final = 100.0
PLAN_PATH: Final = Path(__file__).resolve().parents[1] / "config" / "waveguard.yaml"
# The example plan's secrets are only interpolated, never used: the benchmark sends no alerts.
_PLAN_ENV: Final = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "PAGERDUTY_ROUTING_KEY": "R0ut1ngKeyForBench00000000000000",
    "TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/teams",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "bench-client-state",
}


class _Queue:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def send(self, queue_name: str, envelope: Envelope, *, delay: Any = None, ttl: Any = None) -> str:
        if queue_name == WAVE_WORK:
            self.sent.append(envelope)
        return envelope.id


TARGET_WRITES_PER_MEMBER: Final = 0.055
TARGET_WALL_OVER_FLOOR: Final = 1.25


def meets_targets(figures: dict[str, float]) -> bool:
    """True when writes per member (429s included) and wall time over the floor are within target."""
    return (
        figures["write_attempts_per_member"] <= TARGET_WRITES_PER_MEMBER
        and figures["writes_per_member"] <= TARGET_WRITES_PER_MEMBER
        and figures["wall_over_floor"] <= TARGET_WALL_OVER_FLOOR
        and figures["members_in_group"] == figures["members"]
    )


def run() -> dict[str, float]:
    """Run both syncs against a fresh emulator; returns the figures."""
    budget = WriteBudget.time_scaled(TIME_SCALE, retry_after_format="decimal")
    handle = start_emulator(port=0, seed="empty", write_budget=budget)
    try:
        return asyncio.run(_run(handle, budget))
    finally:
        handle.stop()


async def _run(handle: Any, budget: WriteBudget) -> dict[str, float]:
    rate = budget.capacity / budget.per_seconds
    async with httpx.AsyncClient(timeout=60) as http:
        admin = handle.admin_url
        people = [
            {"userPrincipalName": f"b{i:06d}@contoso.com", "department": "Bench"} for i in range(MEMBERS)
        ]
        for i in range(0, MEMBERS, 1000):
            (await http.post(f"{admin}/users", json=people[i : i + 1000])).raise_for_status()
        group = (await http.post(f"{admin}/groups", json={"displayName": "WaveGuard - Bench"})).json()
        naive_group = (await http.post(f"{admin}/groups", json={"displayName": "Naive"})).json()
        # Every tenant WaveGuard runs in has its break-glass accounts in their exclusion group: the
        # Graph client refuses every group write until it can resolve them.
        await _add_break_glass(
            http, admin, load_plan(PLAN_PATH, {"GRAPH_BASE_URL": handle.base_url, **_PLAN_ENV})
        )
        rtt = await _round_trip(http, handle.base_url)
        await asyncio.sleep(budget.per_seconds)  # a full bucket for each contender
        waveguard = await _waveguard(handle, http)
        await asyncio.sleep(budget.per_seconds)
        naive = await _naive(handle, http, naive_group["id"])
        members = len(await _members(http, handle.base_url, group["id"]))
    writes = math.ceil(MEMBERS / 20)
    floor = max(writes / rate, math.ceil(MEMBERS / 400) * rtt)
    strict = max((writes - budget.capacity) / rate, math.ceil(MEMBERS / 400) * rtt)
    naive_wall = naive["wall_seconds"] / NAIVE_SAMPLE * MEMBERS
    return {
        "members": MEMBERS,
        "members_in_group": members,
        "budget_writes_per_second": rate,
        "budget_capacity": budget.capacity,
        "time_scale": TIME_SCALE,
        "writes_per_member": waveguard["writes"] / MEMBERS,
        "write_attempts_per_member": (waveguard["writes"] + waveguard["throttled"]) / MEMBERS,
        "round_trips": waveguard["round_trips"],
        "throttled": waveguard["throttled"],
        "plan_seconds": round(waveguard["plan_seconds"], 3),
        "wall_seconds": round(waveguard["wall_seconds"], 3),
        "floor_seconds": round(floor, 3),
        "wall_over_floor": round(waveguard["wall_seconds"] / floor, 3),
        "wall_over_strict_floor": round(waveguard["wall_seconds"] / strict, 3),
        "naive_sample": NAIVE_SAMPLE,
        "naive_writes_per_member": naive["writes"] / NAIVE_SAMPLE,
        "naive_round_trips_per_member": naive["round_trips"] / NAIVE_SAMPLE,
        "naive_throttled_per_member": naive["throttled"] / NAIVE_SAMPLE,
        "naive_wall_seconds_extrapolated": round(naive_wall, 3),
        "naive_over_waveguard_writes": round(
            naive["writes"] / NAIVE_SAMPLE / (waveguard["writes"] / MEMBERS), 2
        ),
        "naive_over_waveguard_wall": round(naive_wall / waveguard["wall_seconds"], 2),
    }


async def _round_trip(http: httpx.AsyncClient, base_url: str) -> float:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        (await http.get(f"{base_url}/users?$top=1&$select=id")).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _add_break_glass(http: httpx.AsyncClient, admin: str, plan: RolloutPlan) -> None:
    ids = []
    for account in plan.break_glass.accounts:
        user = {"userPrincipalName": account.user_principal_name, "department": "IT"}
        ids.append((await http.post(f"{admin}/users", json=user)).raise_for_status().json()["id"])
    group = {"displayName": plan.break_glass.exclusion_group.display_name, "members": ids}
    (await http.post(f"{admin}/groups", json=group)).raise_for_status()


async def _waveguard(handle: Any, http: httpx.AsyncClient) -> dict[str, float]:
    environ = {
        "GRAPH_BASE_URL": handle.base_url,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        **_PLAN_ENV,
    }
    settings = load_settings(environ)
    plan = load_plan(PLAN_PATH, environ)
    wave = Wave.model_validate(
        {
            "name": "bench",
            "group": {"displayName": "WaveGuard - Bench"},
            "selectors": {"departments": ["Bench"]},
            "blastRadius": 1_000_000,
        }
    )
    client = build_graph_client(settings)
    queue = _Queue()
    writer = MembershipWriter(BatchClient.for_graph(client))
    deps = SyncDeps(
        plan=plan.model_copy(update={"waves": [wave]}),
        graph=client,
        writer=writer,
        state=build_memory_state().aio,
        queues=queue,
    )
    start = time.perf_counter()
    await start_wave_sync(deps, "bench", correlation_id="bench")
    planned = time.perf_counter()
    (await http.delete(f"{handle.admin_url}/requests")).raise_for_status()
    for envelope in queue.sent:
        await process_wave_work(envelope.to_json(), deps)
    wall = time.perf_counter() - planned
    log = (await http.get(f"{handle.admin_url}/requests")).json()["value"]
    return {"plan_seconds": planned - start, "wall_seconds": wall, **_count(log)}


async def _naive(handle: Any, http: httpx.AsyncClient, group_id: str) -> dict[str, float]:
    """What a script does: one POST members/$ref per user, sleeping through each Retry-After."""
    users = (await http.get(f"{handle.base_url}/users?$select=id&$top={NAIVE_SAMPLE}")).json()["value"]
    (await http.delete(f"{handle.admin_url}/requests")).raise_for_status()
    start = time.perf_counter()
    for user in users:
        body = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"}
        while True:
            response = await http.post(f"{handle.base_url}/groups/{group_id}/members/$ref", json=body)
            if response.status_code != 429:
                response.raise_for_status()
                break
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    wall = time.perf_counter() - start
    log = (await http.get(f"{handle.admin_url}/requests")).json()["value"]
    return {"wall_seconds": wall, **_count(log)}


def _count(log: list[dict[str, Any]]) -> dict[str, float]:
    methods = ("POST", "PATCH", "PUT", "DELETE")
    writes = [r for r in log if r["method"] in methods and not r["path"].endswith("$batch")]
    return {
        "writes": sum(r["status"] != 429 for r in writes),
        "throttled": sum(r["status"] == 429 for r in log),
        "round_trips": sum(r.get("batchId") is None for r in log),
    }


async def _members(http: httpx.AsyncClient, base_url: str, group_id: str) -> set[str]:
    url: str | None = f"{base_url}/groups/{group_id}/members?$select=id&$top=999"
    found: set[str] = set()
    while url:
        page = (await http.get(url)).json()
        found |= {m["id"] for m in page["value"]}
        url = page.get("@odata.nextLink")
    return found


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:36} {value}")
