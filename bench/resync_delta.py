"""The rollout timer's every-tick re-sync at 100,000 users: what a tick costs in Graph round trips
when nothing changed and when 1 % of the users changed, against a full read of everyone.

The Graph emulator runs in a process of its own, seeded with ``--seed empty --users 100000`` plus
the break-glass accounts, their exclusion group and an empty wave group whose selector takes one
department. ``resync_started_waves`` runs three ticks: the first reads everyone (no delta link yet),
the second finds nothing changed, and before the third 1,000 users (1 %) change department (half
into the wave's department, half out of it). The plans are captured, not applied. Round trips are
counted in the emulator's request log (a ``$batch`` is one). Goals: at most 5 reads on a quiet tick,
and a changed tick in proportion to the changes (reported per changed user).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

import httpx

from bench.emulator_process import emulator_process
from bench.membership_sync import _PLAN_ENV, PLAN_PATH, _add_break_glass, _Queue
from shared.config import Wave, load_plan, load_settings
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.rollout.membership import MembershipWriter, SyncDeps
from shared.rollout.membership.changed import resync_started_waves
from shared.state import build_memory_state, utc_now

USERS: Final = 100_000
CHANGED: Final = 1_000
QUIET_GOAL: Final = 5
_GROUP: Final = "WaveGuard - Bench Resync"
_DEPARTMENT: Final = "Finance"


def run() -> dict[str, float]:
    with emulator_process("--seed", "empty", "--users", str(USERS)) as base:
        return asyncio.run(_measure(base))


def meets_targets(figures: dict[str, float]) -> bool:
    return figures["quiet_reads"] <= QUIET_GOAL and figures["changed_reads_per_changed_user"] < 1.0


async def _measure(base: str) -> dict[str, float]:
    environ = {
        "GRAPH_BASE_URL": f"{base}/v1.0",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        **_PLAN_ENV,
    }
    plan = load_plan(PLAN_PATH, environ)
    admin = f"{base}/_emulator"
    wave = Wave.model_validate(
        {
            "name": "bench",
            "group": {"displayName": _GROUP},
            "selectors": {"departments": [_DEPARTMENT]},
            "blastRadius": 10_000_000,
        }
    )
    client = build_graph_client(load_settings(environ))
    deps = SyncDeps(
        plan=plan.model_copy(update={"waves": [wave]}),
        graph=client,
        writer=MembershipWriter(BatchClient.for_graph(client)),
        state=build_memory_state().aio,
        queues=_Queue(),
    )
    figures: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=300) as http:
        await _add_break_glass(http, admin, plan)
        (await http.post(f"{admin}/groups", json={"displayName": _GROUP})).raise_for_status()
        for tick, name in enumerate(("full", "quiet", "changed")):
            if name == "changed":
                await _change(http, base, admin)
            (await http.delete(f"{admin}/requests")).raise_for_status()
            started = time.perf_counter()
            outcome = await resync_started_waves(
                deps, ["bench"], correlation_id=f"tick-{tick}", now=utc_now()
            )
            figures[f"{name}_s"] = round(time.perf_counter() - started, 3)
            log = (await http.get(f"{admin}/requests")).raise_for_status().json()["value"]
            figures[f"{name}_reads"] = float(sum(1 for r in log if not r.get("batchId")))
            figures[f"{name}_mode_is_full"] = float(outcome.mode == "full")
            if name == "changed":
                figures["changed_users"] = float(outcome.changed_users)
    figures["quiet_reads_over_goal"] = round(figures["quiet_reads"] / QUIET_GOAL, 2)
    figures["changed_reads_per_changed_user"] = round(figures["changed_reads"] / CHANGED, 3)
    figures["changed_reads_over_full"] = round(figures["changed_reads"] / figures["full_reads"], 3)
    return figures


async def _change(http: httpx.AsyncClient, base: str, admin: str) -> None:
    """1 % of the users change department: half into the wave's, half out of it."""
    inside: list[str] = []
    outside: list[str] = []
    url: str | None = f"{base}/v1.0/users?$select=id,department&$top=999"
    while url and (len(inside) < CHANGED // 2 or len(outside) < CHANGED // 2):
        page: Any = (await http.get(url)).raise_for_status().json()
        for user in page["value"]:
            (inside if user.get("department") == _DEPARTMENT else outside).append(user["id"])
        url = page.get("@odata.nextLink")
    moves = [(uid, "Operations") for uid in inside[: CHANGED // 2]]
    moves += [(uid, _DEPARTMENT) for uid in outside[: CHANGED // 2]]
    for uid, department in moves:
        (await http.patch(f"{admin}/users/{uid}", json={"department": department})).raise_for_status()


if __name__ == "__main__":
    print(json.dumps({"resync_delta": run()}, indent=2), flush=True)
