"""`waveguard policies plan|apply` against the real Graph emulator and Azurite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.main import main
from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.rollout.policies import sync_baseline
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState, write_wave_state
from shared.state import StateStores, build_state, utc_now
from tests.aio import aio
from tests.waiting import wait_for

pytestmark = pytest.mark.functional

CA_PATH = "/v1.0/identity/conditionalAccess/policies"
REPORT_ONLY = "enabledForReportingButNotEnforced"


@pytest.fixture
def stores(app_environ: dict[str, str]) -> Iterator[StateStores]:
    """Azurite's state stores, with every wave back to planned before and after the test."""
    settings = load_settings(app_environ)
    stores = build_state(settings)
    waves = [wave.name for wave in load_plan_for(settings).waves]
    for name in waves:
        stores.kv.delete(WAVES_NAMESPACE, name)
    yield stores
    for name in waves:
        stores.kv.delete(WAVES_NAMESPACE, name)


def _run(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["policies", *argv, "--json"], environ=env)
    return code, json.loads(capsys.readouterr().out)


def _live(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulator.base_url}/identity/conditionalAccess/policies").json()["value"])


def _live_or_throttled(emulator: EmulatorHandle) -> list[dict[str, Any]] | None:
    answer = httpx.get(f"{emulator.base_url}/identity/conditionalAccess/policies")
    return None if answer.status_code == 429 else list(answer.raise_for_status().json()["value"])


def _writes(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    log = httpx.get(f"{emulator.admin_url}/requests", params={"path": CA_PATH}).json()["value"]
    return [r for r in log if r["method"] in ("POST", "PATCH", "DELETE")]


def _clear_log(emulator: EmulatorHandle) -> None:
    httpx.delete(f"{emulator.admin_url}/requests").raise_for_status()


def test_plan_then_apply_creates_the_baseline_report_only_and_a_second_apply_writes_nothing(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    # GIVEN the demo tenant without any Conditional Access policy
    # WHEN planned
    code, plan = _run(app_environ, capsys, "plan")
    # THEN five creates, lint passed, exit 3 (changes)
    assert code == 3, plan
    assert plan["summary"] == {"create": 5, "update": 0, "unchanged": 0}
    assert plan["lint"]["ok"] is True
    # WHEN applied
    code, applied = _run(app_environ, capsys, "apply", "--yes")
    assert code == 0, applied
    assert applied["applied"]["writes"] == 5
    # THEN the tenant holds exactly the five policies, report-only, all excluding break-glass
    live = _live(emulator_server)
    assert sorted(p["displayName"] for p in live) == sorted(c["displayName"] for c in plan["changes"])
    for policy in live:
        users = policy["conditions"]["users"]
        assert policy["state"] == REPORT_ONLY, policy["displayName"]
        assert set(demo.break_glass_ids) <= set(users["excludeUsers"]), policy["displayName"]
        assert users["excludeGroups"] == [demo.break_glass_group_id], policy["displayName"]
    # AND every write is in the audit log under one correlation id
    creates = [
        e for e in stores.audit.list(limit=50) if e.correlation_id == applied["applied"]["correlationId"]
    ]
    assert sorted(e.target for e in creates) == sorted(f"conditionalAccessPolicy/{p['id']}" for p in live)
    # WHEN applied a second time
    _clear_log(emulator_server)
    code, again = _run(app_environ, capsys, "apply", "--yes")
    # THEN nothing to apply and not a single write reached Graph
    assert code == 0
    assert again["summary"] == {"create": 0, "update": 0, "unchanged": 5}
    assert _writes(emulator_server) == []
    assert main(["policies", "plan"], environ=app_environ) == 0


def test_a_hand_edited_policy_shows_up_as_an_update_and_apply_repairs_it(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    assert _run(app_environ, capsys, "apply", "--yes")[0] == 0
    # GIVEN someone removed the exclusion group from the legacy-auth policy in the portal
    legacy = next(
        p for p in _live(emulator_server) if p["displayName"].endswith("Block legacy authentication")
    )
    users = {**legacy["conditions"]["users"], "excludeGroups": []}
    url = f"{emulator_server.base_url}/identity/conditionalAccess/policies/{legacy['id']}"
    assert httpx.patch(url, json={"conditions": {"users": users}}, headers=ADMIN_HEADERS).status_code == 204
    # WHEN planned
    code, plan = _run(app_environ, capsys, "plan")
    # THEN one update naming the field, old and new; the live finding is reported
    assert code == 3
    [update] = [c for c in plan["changes"] if c["action"] == "update"]
    assert update["fields"] == [
        {"path": "conditions.users.excludeGroups", "old": None, "new": [demo.break_glass_group_id]}
    ]
    assert ("WG-CA-01", "live") in {(f["check"], f["scope"]) for f in plan["lint"]["findings"]}
    # WHEN applied: exactly one PATCH, and the exclusion is back
    _clear_log(emulator_server)
    assert _run(app_environ, capsys, "apply", "--yes")[0] == 0
    assert [(w["method"], w["path"]) for w in _writes(emulator_server)] == [
        ("PATCH", f"{CA_PATH}/{legacy['id']}")
    ]
    assert httpx.get(url).json()["conditions"]["users"]["excludeGroups"] == [demo.break_glass_group_id]


def test_the_lint_blocks_apply_when_a_wave_under_way_has_no_group(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the pilot is registering but its group "WaveGuard - Wave 1 Pilot" does not exist
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REGISTERING, utc_now()))
    # WHEN applied
    code, out = _run(app_environ, capsys, "apply", "--yes")
    # THEN refused with the config field named, and nothing written
    assert code == 1
    blocking = [
        f for f in out["lint"]["findings"] if f["severity"] == "error" and f["scope"] == "after-apply"
    ]
    assert [(f["check"], f["field"]) for f in blocking] == [("WG-CA-02", "waves[0].group")]
    assert _writes(emulator_server) == []
    assert _live(emulator_server) == []


def test_a_wave_moves_from_the_report_only_twin_to_the_enforcing_policy(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the pilot's group exists and the pilot is in report-only
    created = httpx.post(
        f"{emulator_server.admin_url}/groups", json={"displayName": "WaveGuard - Wave 1 Pilot"}
    )
    created.raise_for_status()
    pilot_group = httpx.get(
        f"{emulator_server.base_url}/groups", params={"$filter": "displayName eq 'WaveGuard - Wave 1 Pilot'"}
    ).json()["value"][0]["id"]
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now()))
    assert _run(app_environ, capsys, "apply", "--yes")[0] == 0
    by_name = {p["displayName"]: p for p in _live(emulator_server)}
    assert by_name["WaveGuard - Require MFA (report-only waves)"]["conditions"]["users"]["includeGroups"] == [
        pilot_group
    ]
    assert by_name["WaveGuard - Require MFA"]["state"] == REPORT_ONLY
    # WHEN the pilot is promoted and the baseline applied
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now()))
    code, out = _run(app_environ, capsys, "apply", "--yes")
    # THEN two updates: the enforcing policy is enabled for the pilot group, the twin lets it go
    assert code == 0, out
    assert out["summary"] == {"create": 0, "update": 2, "unchanged": 3}
    by_name = {p["displayName"]: p for p in _live(emulator_server)}
    mfa = by_name["WaveGuard - Require MFA"]
    assert mfa["state"] == "enabled"
    assert mfa["conditions"]["users"]["includeGroups"] == [pilot_group]
    assert by_name["WaveGuard - Require MFA (report-only waves)"]["conditions"]["users"]["includeUsers"] == [
        "None"
    ]


def test_apply_paces_itself_under_the_one_request_per_second_limit(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the emulator enforces Graph's 1 request/s on the CA API (429 without Retry-After)
    emulator_server.reset(rateLimits={"conditionalAccess": True})
    # WHEN the baseline is applied
    code, out = _run(app_environ, capsys, "apply", "--yes")
    # THEN every policy was created and no request was throttled
    assert code == 0, out
    assert out["applied"]["writes"] == 5
    log = httpx.get(f"{emulator_server.admin_url}/requests", params={"path": CA_PATH}).json()["value"]
    assert [r["status"] for r in log if r["status"] == 429] == []
    assert sorted(r["method"] for r in log) == ["GET"] + ["POST"] * 5
    # this test's own read is a CA request too: it waits for the rate limit to let it through
    live = wait_for("a CA read the rate limit lets through", lambda: _live_or_throttled(emulator_server))
    assert len(live) == 5


def test_a_deleted_wave_group_still_referenced_by_a_live_policy_blocks_the_apply(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the pilot in report-only, applied, and then its group deleted (Graph leaves the id dangling)
    httpx.post(f"{emulator_server.admin_url}/groups", json={"displayName": "WaveGuard - Wave 1 Pilot"})
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now()))
    assert _run(app_environ, capsys, "apply", "--yes")[0] == 0
    twin = next(p for p in _live(emulator_server) if p["displayName"].endswith("(report-only waves)"))
    [pilot_group] = twin["conditions"]["users"]["includeGroups"]
    assert (
        httpx.delete(f"{emulator_server.base_url}/groups/{pilot_group}", headers=ADMIN_HEADERS).status_code
        == 204
    )
    # WHEN planned
    _clear_log(emulator_server)
    code, plan = _run(app_environ, capsys, "apply", "--yes")
    # THEN refused: the plan's wave group is missing, and the live twin references a group that is gone
    assert code == 1
    findings = {(f["check"], f["scope"], f["field"]) for f in plan["lint"]["findings"]}
    assert ("WG-CA-02", "after-apply", "waves[0].group") in findings
    assert ("WG-CA-02", "live", "conditions.users.includeGroups") in findings
    assert any(pilot_group in f["message"] for f in plan["lint"]["findings"] if f["scope"] == "live")
    assert _writes(emulator_server) == []


async def test_sync_baseline_is_the_one_call_a_wave_promotion_makes(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores
) -> None:
    # GIVEN the pilot group exists and the baseline was synced with the pilot in report-only
    pilot = {"displayName": "WaveGuard - Wave 1 Pilot"}
    async with httpx.AsyncClient() as http:
        (await http.post(f"{emulator_server.admin_url}/groups", json=pilot)).raise_for_status()
    await write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now())
    settings = load_settings(app_environ)
    client = build_graph_client(settings)
    plan = load_plan_for(settings)
    first = await sync_baseline(
        client, plan, aio(stores), actor="wave-work", correlation_id="c-1", reason="pilot dark"
    )
    assert len(first.created) == 5
    # WHEN the pilot is promoted and the worker syncs the baseline
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now())
    result = await sync_baseline(
        client, plan, aio(stores), actor="wave-work", correlation_id="c-2", reason="pilot promoted"
    )
    # THEN the promotion is two policy updates, audited with the worker's reason
    assert sorted(name for name, _ in result.updated) == [
        "WaveGuard - Require MFA",
        "WaveGuard - Require MFA (report-only waves)",
    ]
    audited = [e for e in stores.audit.list(limit=100) if e.correlation_id == "c-2"]
    assert {(e.actor, e.action, e.reason) for e in audited} == {
        ("wave-work", "ca.policy.update", "pilot promoted")
    }
    # AND a third sync writes nothing
    assert (
        await sync_baseline(client, plan, aio(stores), actor="w", correlation_id="c-3", reason="r")
    ).writes == 0
