"""Demo step: the pilot wave goes planned → registering → report-only → enforced as its gates pass.

Runs on the live local stack (`make run`): the Graph emulator and Azurite. It uses a copy of the
plan with ``promotion: auto`` and ``minSoakDays: 0`` so the whole lifecycle fits in a minute, makes
the pilot's members register MFA and sign in cleanly through the emulator's admin API, and runs
the rollout timer's evaluation between each step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from local.demo_permfa import show_per_user_mfa_migration
from local.demo_plan import write_demo_plan
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.alerting.open_alerts import ALERTS_OPEN_NAMESPACE
from shared.config import RolloutPlan, Settings, load_settings
from shared.errors import RetryableError
from shared.graph import build_graph_client
from shared.report.snapshots import clear_snapshots, record_daily_snapshots
from shared.rollout.lifecycle import (
    APPROVALS_NAMESPACE,
    SYNC_NAMESPACE,
    EvaluationResult,
    LifecycleDeps,
    evaluate_waves,
    report_only_policy_name,
)
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.rollout.permfa.ledger import clear_ledger
from shared.rollout.wave_groups import WAVE_GROUPS_NAMESPACE
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState
from shared.services import build_services
from shared.state import AsyncKeyValuePort

__all__ = ["reset_rollout_state", "show_wave_promotion"]

DEMO_SIGN_INS: Final = 25
MEMBERSHIP_WAIT_SECONDS: Final = 45.0
EVALUATION_ATTEMPTS: Final = 12
EVALUATION_PAUSE: Final = 5.0


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def _demo_plan(settings: Settings) -> Path:
    data = yaml.safe_load(settings.config_path.read_text(encoding="utf-8"))
    pilot = data["waves"][0]
    pilot["promotion"] = "auto"
    pilot["gates"] = {**pilot.get("gates", {}), "minSoakDays": 0, "minReportOnlySignIns": DEMO_SIGN_INS}
    return write_demo_plan(data, "waveguard-demo.yaml")


def _admin_url(settings: Settings) -> str:
    return settings.graph_base_url.rstrip("/").removesuffix("/v1.0") + "/_emulator"


def _policies(graph: httpx.Client) -> dict[str, dict[str, Any]]:
    return {p["displayName"]: p for p in graph.get("/identity/conditionalAccess/policies").json()["value"]}


def _group_id(graph: httpx.Client, name: str) -> str | None:
    found = graph.get("/groups", params={"$filter": f"displayName eq '{name}'"}).json()["value"]
    return str(found[0]["id"]) if found else None


def _members(graph: httpx.Client, group_id: str) -> list[str]:
    return [m["id"] for m in graph.get(f"/groups/{group_id}/members", params={"$top": "999"}).json()["value"]]


def _print_evaluation(label: str, result: EvaluationResult) -> None:
    pilot = result.decisions[0]
    moved = (
        f"{pilot.state.value} -> {pilot.new_state.value}"
        if pilot.applied and pilot.new_state
        else pilot.state.value
    )
    print(f"  [{label}] pilot: {moved:<28} {pilot.action}: {pilot.detail}")
    for gate in pilot.gates:
        mark = "pass" if gate.passed else "FAIL"
        measured = "-" if gate.measured is None else gate.measured
        print(f"      {mark}  {gate.name:<20} {measured!s:>8} (threshold {gate.threshold})  {gate.detail}")
    for nudge in result.nudges:
        if nudge.sent or nudge.escalated:
            print(f"      nudged {len(nudge.sent)} unregistered members of {nudge.wave} by e-mail")
    if result.policy_synced:
        print("      CA baseline synced")


def _print_mfa_policies(graph: httpx.Client, deps: LifecycleDeps, group_id: str | None) -> None:
    policies = _policies(graph)
    prefix = deps.plan.policies.name_prefix
    for name in (prefix + "Require MFA", report_only_policy_name(deps.plan)):
        policy = policies.get(name)
        if policy is None:
            print(f"      {name}: not created yet")
            continue
        groups = policy["conditions"]["users"].get("includeGroups") or []
        has = "includes the pilot group" if group_id in groups else "pilot group not included"
        print(f"      {name}: state {policy['state']}, {len(groups)} group(s), {has}")


def _wait_for_members(graph: httpx.Client, group_id: str, it_pilot: list[str], wait: float) -> list[str]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        members = _members(graph, group_id)
        if members:
            print(f"  membership sync (wave-work queue) filled the pilot group: {len(members)} members")
            return members
        time.sleep(2)
    # The stack's wave worker did not run: fill the group the way the sync would have.
    for start in range(0, len(it_pilot), 20):
        binds = [f"{graph.base_url}/directoryObjects/{m}" for m in it_pilot[start : start + 20]]
        graph.patch(f"/groups/{group_id}", json={"members@odata.bind": binds}).raise_for_status()
    members = _members(graph, group_id)
    waited = f"{wait:.0f} s"
    print(f"  (no membership sync ran within {waited}; {len(members)} IT pilot members added directly)")
    return members


def _register_missing(graph: httpx.Client, admin: httpx.Client, members: list[str]) -> None:
    url = "/reports/authenticationMethods/userRegistrationDetails"
    rows = graph.get(url, params={"$top": "999"}).json()["value"]
    registered = {r["id"] for r in rows if r["isMfaRegistered"]}
    missing = [m for m in members if m not in registered]
    for user_id in missing:
        admin.post(f"/users/{user_id}/methods", json={"methods": ["microsoftAuthenticatorPush"]})
    print(f"  {len(missing)} pilot members register the Authenticator app (emulator admin API)")


def _inject_clean_sign_ins(graph: httpx.Client, admin: httpx.Client, twin: str, members: list[str]) -> None:
    policy = _policies(graph).get(twin, {})
    applied = [{"id": policy.get("id", ""), "displayName": twin, "result": "reportOnlySuccess"}]
    sign_ins = [
        {
            "userId": members[i % len(members)],
            "appDisplayName": "Office 365",
            "appliedConditionalAccessPolicies": applied,
        }
        for i in range(DEMO_SIGN_INS)
    ]
    admin.post("/signins", json=sign_ins).raise_for_status()
    print(f"  {DEMO_SIGN_INS} report-only sign-ins of pilot members, none would have failed (injected)")


async def reset_rollout_state(kv: AsyncKeyValuePort, plan: RolloutPlan) -> None:
    """Forget the rollout (wave states, approvals, recorded wave groups, open alerts, the pending
    policy sync, the per-user MFA report and ledgers, the report's daily snapshots): the demo starts
    from a planned pilot, and tests that share storage start clean."""
    for wave in plan.waves:
        for namespace in (WAVES_NAMESPACE, APPROVALS_NAMESPACE, WAVE_GROUPS_NAMESPACE, ALERTS_OPEN_NAMESPACE):
            await kv.delete(namespace, wave.name)
    await kv.delete(SYNC_NAMESPACE, "baseline")
    for wave in plan.waves:
        await clear_ledger(kv, wave.name)
        await clear_snapshots(kv, wave.name)
    await kv.delete(PERMFA_NAMESPACE, REPORT_KEY)


async def _evaluate_once(deps: LifecycleDeps, correlation_id: str) -> EvaluationResult:
    """One evaluation; the stack's own rollout timer may be evaluating at the same moment (it fires
    at every quarter hour): its policy lock or a wave record it just changed is waited out."""
    for attempt in range(1, EVALUATION_ATTEMPTS + 1):
        try:
            result = await evaluate_waves(deps, correlation_id=correlation_id)
            # as the rollout timer does after each tick: the day's figures for the rollout report
            await record_daily_snapshots(
                deps.stores.kv, result, now=deps.clock(), correlation_id=correlation_id
            )
            return result
        except RetryableError as exc:
            if attempt == EVALUATION_ATTEMPTS:
                raise
            print(f"  (the rollout timer is evaluating too: {exc}; trying again in {EVALUATION_PAUSE:.0f} s)")
            await asyncio.sleep(EVALUATION_PAUSE)
    raise AssertionError("unreachable")


def show_wave_promotion(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    membership_wait_seconds: float = MEMBERSHIP_WAIT_SECONDS,
    cli: str = "waveguard",
) -> None:
    """Print the pilot wave's lifecycle on the live stack, gate by gate, with the CA policy change
    (``cli`` starts the CLI commands it suggests)."""
    plan_path = _demo_plan(settings)
    demo_settings = load_settings({**environ, "WAVEGUARD_CONFIG": str(plan_path)})
    _title("6. Wave promotion: the pilot, gated (demo plan: promotion auto, minSoakDays 0)")
    asyncio.run(_promote_pilot(demo_settings, membership_wait_seconds, cli))


async def _promote_pilot(settings: Settings, membership_wait_seconds: float, cli: str) -> None:
    services = build_services(settings)
    plan = services.plan
    client = build_graph_client(settings)
    deps = services.lifecycle_for(client=client, actor="demo")
    await reset_rollout_state(deps.stores.kv, deps.plan)
    twin = report_only_policy_name(plan)
    pilot_name = plan.waves[0].group.display_name or ""
    with (
        httpx.Client(base_url=settings.graph_base_url, timeout=30, headers=ADMIN_HEADERS) as graph,
        httpx.Client(base_url=_admin_url(settings), timeout=30) as admin,
    ):
        run = 0

        async def evaluate(label: str) -> EvaluationResult:
            nonlocal run
            run += 1
            result = await _evaluate_once(deps, f"demo-{run}-{uuid.uuid4().hex[:8]}")
            _print_evaluation(label, result)
            return result

        await evaluate("timer run 1")
        group_id = _group_id(graph, pilot_name)
        _print_mfa_policies(graph, deps, group_id)
        if group_id is None:
            print("  the pilot group was not created; stopping here")
            return
        it_pilot_id = _group_id(graph, "IT pilot")
        it_pilot = _members(graph, it_pilot_id) if it_pilot_id else []
        members = _wait_for_members(graph, group_id, it_pilot, membership_wait_seconds)
        await evaluate("timer run 2")

        _register_missing(graph, admin, members)
        await evaluate("timer run 3")

        _inject_clean_sign_ins(graph, admin, twin, members)
        result = await evaluate("timer run 4")
        _print_mfa_policies(graph, deps, group_id)
        pilot = plan.waves[0].name
        if any(d.wave == pilot and d.applied and d.new_state is WaveState.ENFORCED for d in result.decisions):
            await show_per_user_mfa_migration(client, plan, deps.stores, admin, pilot, cli=cli)
