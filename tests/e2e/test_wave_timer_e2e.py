"""The rollout timer end to end: mini-host timer -> gates -> wave-work queue -> worker -> Graph emulator.

The real function_app runs in the mini-host with WAVEGUARD_WAVE_SCHEDULE set to every three
seconds (Azure reads the same app setting; infra sets every 15 minutes). Nothing calls the
lifecycle code directly: the test only does what people and Entra would do (members register MFA,
users sign in) through the emulator's admin API, and watches the tenant and the stored wave state.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from local.demo_waves import reset_rollout_state
from local.graph_emulator import EmulatorHandle
from local.minihost import create_host
from shared.config import load_plan_for, load_settings
from shared.config.plan import RolloutPlan
from shared.names import ALERTS, POISON_SUFFIX, WAVE_WORK
from shared.report import DailySnapshot, ReportOptions, build_rollout_report, read_snapshots
from shared.rollout.lifecycle import report_only_policy_name
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import StateStores, build_state
from tests.aio import aio
from tests.conftest import PLAN_SECRETS
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVERY_THREE_SECONDS = "*/3 * * * * *"  # userRegistrationDetails allows 5 reads per 10 s; one per tick
SIGN_INS = 25


class Tenant:
    """The emulator as an administrator and the tenant's users see it."""

    def __init__(self, emulator: EmulatorHandle) -> None:
        self.graph = httpx.Client(base_url=emulator.base_url, timeout=10)
        self.admin = httpx.Client(base_url=emulator.admin_url, timeout=10)

    def get(self, path: str, **params: str) -> Any:
        return self.graph.get(path, params=params).raise_for_status().json()

    def group_id(self, name: str) -> str | None:
        found = self.get("/groups", **{"$filter": f"displayName eq '{name}'"})["value"]
        return str(found[0]["id"]) if found else None

    def members(self, group_id: str) -> set[str]:
        return {m["id"] for m in self.get(f"/groups/{group_id}/members", **{"$top": "999"})["value"]}

    def policy(self, name: str) -> dict[str, Any] | None:
        policies = self.get("/identity/conditionalAccess/policies")["value"]
        return next((p for p in policies if p["displayName"] == name), None)


def _plan_file(tmp: Path) -> Path:
    plan = copy.deepcopy(yaml.safe_load((ROOT / "config" / "waveguard.yaml").read_text("utf-8")))
    pilot = plan["waves"][0]
    pilot["promotion"] = "auto"
    pilot["gates"] = {**pilot["gates"], "minSoakDays": 0, "minReportOnlySignIns": SIGN_INS}
    path = tmp / "waveguard.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), "utf-8")
    return path


def _fresh_rollout(storage: str, stores: StateStores, plan: RolloutPlan) -> None:
    for name in (WAVE_WORK, f"{WAVE_WORK}{POISON_SUFFIX}", ALERTS):
        queue = QueueClient.from_connection_string(storage, name)
        try:
            queue.create_queue()
        except ResourceExistsError:
            queue.clear_messages()
    asyncio.run(reset_rollout_state(aio(stores.kv), plan))


@pytest.fixture(scope="module")
def rollout(
    tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str, emulator_server: EmulatorHandle
) -> Iterator[tuple[Tenant, StateStores, RolloutPlan]]:
    tmp = tmp_path_factory.mktemp("wave-timer-e2e")
    environ = {
        "GRAPH_BASE_URL": emulator_server.base_url,
        "WAVEGUARD_CONFIG": str(_plan_file(tmp)),
        **PLAN_SECRETS,
        "WAVEGUARD_WAVE_SCHEDULE": EVERY_THREE_SECONDS,
    }
    settings = load_settings({**environ, "AzureWebJobsStorage": storage_connection_string})
    plan, stores = load_plan_for(settings), build_state(settings)
    host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:01", maxPollingInterval="00:00:01")
    (tmp / "host.json").write_text(json.dumps(host_json), "utf-8")
    emulator_server.reset()
    _fresh_rollout(storage_connection_string, stores, plan)
    host = create_host(
        "function_app:app",
        app_dir=ROOT,
        host_json=tmp / "host.json",
        http_port=0,
        environ=environ,
        storage_connection_string=storage_connection_string,
        grace_period=5.0,
    )
    with host:
        yield Tenant(emulator_server), stores, plan


def test_the_timer_takes_the_pilot_from_planned_to_enforced_as_its_gates_pass(
    rollout: tuple[Tenant, StateStores, RolloutPlan],
) -> None:
    tenant, stores, plan = rollout
    pilot, finance = plan.waves[0], plan.waves[1]
    pilot_name = pilot.group.display_name or ""

    def state(wave: str) -> WaveState:
        return asyncio.run(read_wave_state(aio(stores.kv), wave)).state

    # GIVEN a tenant where nobody is in a wave yet; the timer ticks every three seconds
    # THEN the first tick starts the pilot: its group is created and the wave-work worker fills it
    # with exactly the people its selectors name (IT department, IT pilot group), never break-glass
    wait_for("the pilot to start registering", lambda: state(pilot.name) is WaveState.REGISTERING)
    group_id = wait_for("the pilot group", lambda: tenant.group_id(pilot_name))
    it_pilot = tenant.members(tenant.group_id("IT pilot") or "")
    it_staff = {
        u["id"] for u in tenant.get("/users", **{"$filter": "department eq 'IT'", "$top": "999"})["value"]
    }
    break_glass = {tenant.get(f"/users/{a.user_principal_name}")["id"] for a in plan.break_glass.accounts}
    expected = (it_pilot | it_staff) - break_glass
    assert len(expected) > 10
    wait_for("the pilot's members", lambda: tenant.members(group_id) == expected, timeout=30)
    # AND the next wave waits; the pilot holds on its registration gate while members are unregistered
    assert state(finance.name) is WaveState.PLANNED
    assert state(pilot.name) is WaveState.REGISTERING

    # WHEN the pilot's members register MFA (as they would, with the TAP or the Authenticator app)
    for user_id in sorted(expected):
        tenant.admin.post(f"/users/{user_id}/methods", json={"methods": ["microsoftAuthenticatorPush"]})
    # THEN a later tick moves the pilot into report-only
    wait_for("the pilot in report-only", lambda: state(pilot.name) is WaveState.REPORT_ONLY, timeout=30)

    # WHEN its members sign in and the report-only policy would not have blocked anyone
    twin = wait_for(
        "the report-only twin to target the pilot",
        lambda: (p := tenant.policy(report_only_policy_name(plan))) and group_id in _groups(p) and p,
    )
    applied = [{"id": twin["id"], "displayName": twin["displayName"], "result": "reportOnlySuccess"}]
    members = sorted(expected)
    sign_ins = [
        {
            "userId": members[i % len(members)],
            "appDisplayName": "Office 365",
            "appliedConditionalAccessPolicies": applied,
        }
        for i in range(SIGN_INS)
    ]
    tenant.admin.post("/signins", json=sign_ins).raise_for_status()
    # THEN a later tick enforces the pilot: the enforcing Require MFA policy now includes its group
    wait_for("the pilot enforced", lambda: state(pilot.name) is WaveState.ENFORCED, timeout=30)
    enforcing = wait_for(
        "the Require MFA policy to include the pilot",
        lambda: (
            (p := tenant.policy(f"{plan.policies.name_prefix}Require MFA")) and group_id in _groups(p) and p
        ),
    )
    assert set(_excluded_users(enforcing)) >= break_glass
    # AND the next wave starts in turn
    wait_for("the next wave to start", lambda: state(finance.name) is WaveState.REGISTERING, timeout=30)

    # AND every tick kept the day's figures for the rollout report: the pilot enforced, all registered
    def snapshot() -> DailySnapshot | None:
        found = asyncio.run(read_snapshots(aio(stores.kv), pilot.name)).snapshots
        return found[-1] if found and found[-1].state == WaveState.ENFORCED.value else None

    latest = wait_for("the pilot's daily snapshot, enforced", snapshot)
    assert (latest.members, latest.registered, latest.registration_rate) == (
        len(expected),
        len(expected),
        1.0,
    )
    assert latest.report_only_threshold == pilot.gates.max_report_only_failure_rate
    # AND the report, from the tables alone, shows the pilot's way up from the audit log
    report = asyncio.run(
        build_rollout_report(plan, stores.aio, now=datetime.now(UTC), options=ReportOptions(wave=pilot.name))
    )
    steps = [(e.previous, e.state) for e in report.waves[0].events if e.kind == "transition"]
    assert steps[-3:] == [
        ("planned", "registering"),
        ("registering", "report-only"),
        ("report-only", "enforced"),
    ]


def _groups(policy: dict[str, Any]) -> list[str]:
    return list(policy["conditions"]["users"].get("includeGroups") or [])


def _excluded_users(policy: dict[str, Any]) -> list[str]:
    return list(policy["conditions"]["users"].get("excludeUsers") or [])
