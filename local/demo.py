"""The live demo `make run` shows once the stack is healthy: what WaveGuard can do so far."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from typing import cast

from cli.main import main as waveguard_cli
from shared.config import RolloutPlan, Settings, load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.graph.directory import find_group, iter_users
from shared.rollout.break_glass import verify_break_glass


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def show_health(host_url: str) -> None:
    _title(f"1. Health: GET {host_url}/api/health")
    with urllib.request.urlopen(f"{host_url}/api/health", timeout=10) as resp:
        body = json.loads(resp.read())
        print(f"HTTP {resp.status}: {body['status']}")
    for name, check in body["checks"].items():
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"  {name:<8} {mark} {check['latency_ms']:>7.1f} ms  {check['detail']}")


def show_plan(settings: Settings) -> RolloutPlan:
    plan = load_plan_for(settings)
    _title(f"2. The rollout plan: {settings.config_path.name}")
    print(f"  {'wave':<16} {'target group':<38} {'selectors':<34} promotion")
    for wave in plan.waves:
        sel = wave.selectors
        parts = [
            f"{label}: {', '.join(values)}"
            for label, values in (
                ("groups", sel.groups),
                ("depts", sel.departments),
                ("countries", sel.countries),
            )
            if values
        ]
        selectors = "everyone else (catch-all)" if wave.catch_all else "; ".join(parts)
        group = wave.group.display_name or str(wave.group.id)
        print(f"  {wave.name:<16} {group:<38} {selectors:<34} {wave.promotion}")
    accounts = ", ".join(a.user_principal_name or str(a.id) for a in plan.break_glass.accounts)
    print(f"  break-glass: {accounts}")
    exclusion = plan.break_glass.exclusion_group
    print(f"  exclusion group: {exclusion.display_name or exclusion.id}")
    return plan


async def _show_tenant(settings: Settings, plan: RolloutPlan) -> None:
    client = build_graph_client(settings)
    by_department: Counter[str] = Counter()
    async for user in iter_users(client, select=("id", "department")):
        by_department[user.department or "(none)"] += 1
    total = sum(by_department.values())
    print(
        f"  {total} users, paged from /users: "
        + ", ".join(f"{d} {n}" for d, n in by_department.most_common())
    )
    report = await verify_break_glass(client, plan.break_glass)
    for account in report.accounts:
        state = "in the exclusion group" if account.in_exclusion_group else "NOT in the exclusion group"
        print(
            f"  break-glass {account.configured_as}: {'found' if account.object_id else 'MISSING'}, {state}"
        )
    for wave in plan.waves:
        group = await find_group(client, group_id=wave.group.id, display_name=wave.group.display_name)
        state = f"exists ({group.id})" if group else "not created yet"
        print(f"  wave {wave.name:<16} target group {state}")


def show_tenant(settings: Settings, plan: RolloutPlan) -> None:
    _title(f"3. The tenant through WaveGuard's Graph client ({settings.graph_base_url})")
    asyncio.run(_show_tenant(settings, plan))


def show_doctor(environ: Mapping[str, str]) -> None:
    _title("4. The operator CLI: waveguard doctor")
    waveguard_cli(["doctor"], environ=environ)


def run_demo(*, host_url: str, environ: Mapping[str, str]) -> None:
    """Print each demo step; a failing step is reported and the demo goes on."""
    settings = load_settings(environ)
    plan: RolloutPlan | None = None

    def step(name: str, action: Callable[[], object]) -> object:
        try:
            return action()
        except Exception as exc:  # the demo goes on; the stack keeps serving
            print(f"  demo step '{name}' failed: {type(exc).__name__}: {exc}", flush=True)
            return None

    step("health", lambda: show_health(host_url))
    plan = cast("RolloutPlan | None", step("plan", lambda: show_plan(settings)))
    if plan is not None:
        step("tenant", lambda: show_tenant(settings, plan))
    step("doctor", lambda: show_doctor(environ))
    print(flush=True)
