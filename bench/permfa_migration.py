"""Benchmark: moving a 10,000-user wave off per-user MFA (``permfa migrate``), the Graph emulator in
a process of its own, its write budget scaled up in rate so the run fits in a minute.

The tenant: ``USERS`` members in the enforced pilot's group, every one registered for MFA, 80 % on
per-user MFA (70 % ``enforced``, 10 % ``enabled``), the rest ``disabled``; the live Require MFA
policy enabled with the group. One ``migrate`` run (blast radius lifted) reads every state and
disables every one on per-user MFA.

Figures (all from the emulator's request log, nothing assumed):

- ``read_requests_per_user``: top-level read requests (GETs, and ``$batch`` requests of GETs) /
  users. Goal <= 0.06 (20 states per ``$batch`` is 0.05).
- ``writes_per_migrated``: PATCH items Graph charged (not answered 429) / users migrated. Goal <= 1.
  ``write_attempts_per_migrated`` counts the 429s too.
- ``write_wall_over_floor``: wall time from the first write to the last / the budget floor,
  ``max(writes - capacity, 0) / rate`` (the bucket starts full). Goal <= 1.25.
- ``read_seconds``: wall time of the read phase (members, states, registration, policies).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from typing import Any, Final

import httpx

from bench.emulator_process import emulator_process
from bench.membership_sync import PLAN_PATH, _add_break_glass
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan, load_settings
from shared.rollout.permfa.migrate import migrate
from shared.rollout.wave_groups import WAVE_GROUPS_NAMESPACE
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState
from shared.state import build_memory_state, utc_now

USERS: Final = int(os.environ.get("BENCH_PERMFA_USERS", "10000"))
CAPACITY: Final = 600
PER_SECONDS: Final = 3.0  # 200 writes/s: Graph's 20/s sped up 10 times, a 3 s bucket
GOAL_READS_PER_USER: Final = 0.06
GOAL_WRITES_PER_MIGRATED: Final = 1.0
GOAL_WALL_OVER_FLOOR: Final = 1.25
_CONCURRENCY: Final = 32
_PLAN_ENV: Final = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "PAGERDUTY_ROUTING_KEY": "R0ut1ngKeyForBench00000000000000",
    "TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/teams",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "bench-client-state",
}


def meets_targets(figures: dict[str, float]) -> bool:
    return (
        figures["read_requests_per_user"] <= GOAL_READS_PER_USER
        and figures["writes_per_migrated"] <= GOAL_WRITES_PER_MIGRATED
        and figures["write_wall_over_floor"] <= GOAL_WALL_OVER_FLOOR
        and figures["left_on_per_user_mfa"] == 0
        and figures["failed"] == 0
    )


def run() -> dict[str, float]:
    budget = ["--write-capacity", str(CAPACITY), "--write-per-seconds", str(PER_SECONDS)]
    with emulator_process("--seed", "empty", "--retry-after-format", "decimal", *budget) as root:
        return asyncio.run(_run(root))


async def _run(root: str) -> dict[str, float]:
    base, admin = f"{root}/v1.0", f"{root}/_emulator"
    environ = {"GRAPH_BASE_URL": base, "AzureWebJobsStorage": "UseDevelopmentStorage=true", **_PLAN_ENV}
    plan = load_plan(PLAN_PATH, environ)
    wave = plan.waves[0].model_copy(update={"blast_radius": 1_000_000})
    plan = plan.model_copy(update={"waves": [wave]})
    async with httpx.AsyncClient(timeout=120) as http:
        states = await _tenant(http, base, admin, plan, wave.group.display_name or "")
        stores = build_memory_state().aio
        await stores.kv.put(WAVE_GROUPS_NAMESPACE, wave.name, {"groupId": states.pop("group")})
        await stores.kv.put(
            WAVES_NAMESPACE, wave.name, {"state": WaveState.ENFORCED.value, "since": utc_now().isoformat()}
        )
        (await http.delete(f"{admin}/requests")).raise_for_status()
        from shared.graph import build_graph_client

        client = build_graph_client(load_settings(environ))
        started = time.perf_counter()
        result = await migrate(client, plan, stores, wave.name, actor="bench", correlation_id="b")
        wall = time.perf_counter() - started
        log = (await http.get(f"{admin}/requests")).json()["value"]
        left = (await http.get(f"{admin}/per-user-mfa")).json()["count"]
    return _figures(log, states, result, wall, left)


async def _tenant(
    http: httpx.AsyncClient, base: str, admin: str, plan: Any, group_name: str
) -> dict[str, Any]:
    """Users, their registration and per-user states, the wave group and the live policy."""
    await _add_break_glass(http, admin, plan)
    ids: list[str] = []
    for start in range(0, USERS, 1000):
        people = [
            {"userPrincipalName": f"p{i:06d}@contoso.com"} for i in range(start, min(USERS, start + 1000))
        ]
        ids += [
            u["id"]
            for u in (await http.post(f"{admin}/users", json=people)).raise_for_status().json()["value"]
        ]
    wanted = {
        uid: ("enforced" if i % 10 < 7 else "enabled" if i % 10 == 7 else "disabled")
        for i, uid in enumerate(ids)
    }
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def prepare(user_id: str) -> None:
        async with gate:
            methods = {"methods": ["microsoftAuthenticatorPush"]}
            (await http.post(f"{admin}/users/{user_id}/methods", json=methods)).raise_for_status()
            if wanted[user_id] != "disabled":
                state = {"state": wanted[user_id]}
                (await http.put(f"{admin}/users/{user_id}/per-user-mfa", json=state)).raise_for_status()

    await asyncio.gather(*(prepare(uid) for uid in ids))
    group = (await http.post(f"{admin}/groups", json={"displayName": group_name, "members": ids})).json()
    bg_group = (
        await http.get(
            f"{base}/groups",
            params={"$filter": f"displayName eq '{plan.break_glass.exclusion_group.display_name}'"},
        )
    ).json()["value"][0]
    bg_users = [
        (await http.get(f"{base}/users/{a.user_principal_name}")).json()["id"]
        for a in plan.break_glass.accounts
    ]
    policy = {
        "displayName": plan.policies.name_prefix + "Require MFA",
        "state": "enabled",
        "conditions": {
            "users": {
                "includeGroups": [group["id"]],
                "excludeGroups": [bg_group["id"]],
                "excludeUsers": bg_users,
            },
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    answer = await http.post(
        f"{base}/identity/conditionalAccess/policies", json=policy, headers=ADMIN_HEADERS
    )
    answer.raise_for_status()
    return {"group": group["id"], "on": sum(s != "disabled" for s in wanted.values())}


def _figures(
    log: list[dict[str, Any]], tenant: dict[str, Any], result: Any, wall: float, left: int
) -> dict[str, float]:
    items: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        if entry.get("batchId"):
            items.setdefault(str(entry["batchId"]), []).append(entry)
    top = [e for e in log if not e.get("batchId")]
    reads = [
        e
        for e in top
        if e["method"] == "GET"
        or (e["path"].endswith("$batch") and all(i["method"] == "GET" for i in items.get(e["requestId"], [])))
    ]
    patches = [e for e in log if e.get("batchId") and e["method"] == "PATCH"]
    charged = [e for e in patches if e["status"] != 429]
    times = [_at(e["time"]) for e in patches]
    write_wall = (max(times) - min(times)).total_seconds() if times else 0.0
    rate = CAPACITY / PER_SECONDS
    floor = max(len(charged) - CAPACITY, 0) / rate
    migrated = len(result.disabled)
    return {
        "users": USERS,
        "on_per_user_mfa_before": tenant["on"],
        "migrated": migrated,
        "failed": len(result.failed),
        "left_on_per_user_mfa": left,
        "read_requests": len(reads),
        "read_requests_per_user": round(len(reads) / USERS, 4),
        "writes_per_migrated": round(len(charged) / max(migrated, 1), 4),
        "write_attempts_per_migrated": round(len(patches) / max(migrated, 1), 4),
        "write_round_trips": sum(1 for e in top if e["path"].endswith("$batch"))
        - sum(1 for e in reads if e["path"].endswith("$batch")),
        "throttled": sum(e["status"] == 429 for e in patches),
        "budget_writes_per_second": rate,
        "write_seconds": round(write_wall, 3),
        "write_floor_seconds": round(floor, 3),
        "write_wall_over_floor": round(write_wall / floor, 3) if floor else 0.0,
        "total_seconds": round(wall, 3),
        "read_seconds": round(wall - write_wall, 3),
    }


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:32} {value}")
