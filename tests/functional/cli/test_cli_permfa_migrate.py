"""`waveguard permfa migrate` and `rollback` on a crafted tenant (the Graph emulator, Azurite): who
is moved off per-user MFA, who is left alone and why, the refusals, the ledger and the rollback."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.main import main
from cli.permfa import run_migrate
from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import RolloutPlan, load_plan_for, load_settings
from shared.rollout.permfa.ledger import ledger_namespace
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState
from shared.state import StateStores, utc_now
from tests.functional.cli.permfa_support import add_member, pilot_group, stores

__all__ = ["stores"]  # the fixture

pytestmark = pytest.mark.functional


@dataclass
class Tenant:
    plan: RolloutPlan
    wave: str
    group_id: str
    enforced_registered: str  # on per-user MFA (enforced), registered: moved
    enabled_unregistered: str  # enabled, not registered: kept
    enabled_registered: str  # enabled, registered since: moved, and restored as Graph allows
    excluded: str  # enforced, registered, in the exclusion group: CA does not cover them
    break_glass: str


def _states(emulator: EmulatorHandle) -> dict[str, str]:
    body = httpx.get(f"{emulator.admin_url}/per-user-mfa").json()
    return {row["id"]: row["state"] for row in body["value"]}


def _set_state(emulator: EmulatorHandle, user_id: str, state: str) -> None:
    answer = httpx.put(f"{emulator.admin_url}/users/{user_id}/per-user-mfa", json={"state": state})
    assert answer.status_code == 200, answer.text


def register(emulator: EmulatorHandle, user_id: str) -> None:
    """The user registers Microsoft Authenticator (the registration report shows them as MFA-registered)."""
    answer = httpx.post(
        f"{emulator.admin_url}/users/{user_id}/methods", json={"methods": ["microsoftAuthenticatorPush"]}
    )
    assert answer.status_code == 201, answer.text


def _wave_state(stores: StateStores, wave: str, state: WaveState) -> None:
    stores.kv.put(WAVES_NAMESPACE, wave, {"state": state.value, "since": utc_now().isoformat()})


@pytest.fixture
def tenant(app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores) -> Tenant:
    plan = load_plan_for(load_settings(app_environ))
    demo = emulator_server.demo
    assert demo is not None
    wave = plan.waves[0]
    group = pilot_group(emulator_server, stores, wave.name, wave.group.display_name or "")
    enforced = sorted(uid for uid, s in demo.per_user_mfa.items() if s == "enforced")
    enabled = sorted(uid for uid, s in demo.per_user_mfa.items() if s == "enabled")
    assert len(enforced) >= 2
    assert len(enabled) >= 2
    bg = demo.break_glass_ids[0]
    t = Tenant(plan, wave.name, group, enforced[0], enabled[0], enabled[1], enforced[1], bg)
    register(emulator_server, t.enabled_registered)
    for user_id in (t.enforced_registered, t.enabled_unregistered, t.enabled_registered, t.excluded):
        add_member(emulator_server, group, user_id)
    add_member(emulator_server, demo.break_glass_group_id, t.excluded)
    # someone put a break-glass account into the pilot's group, and on per-user MFA, by hand
    add_member(emulator_server, group, t.break_glass)
    _set_state(emulator_server, t.break_glass, "enforced")
    return t


def _enforce(env: dict[str, str], stores: StateStores, wave: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The wave enforced in the store and by the live Require MFA policy (the second apply enables it)."""
    _wave_state(stores, wave, WaveState.ENFORCED)
    for _ in range(2):
        assert main(["policies", "apply", "--yes", "--json"], environ=env) == 0
    capsys.readouterr()


def _run(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["permfa", *argv, "--json"], environ=env)
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith("{") else {})


def test_migrate_refuses_a_wave_ca_does_not_enforce_and_changes_nothing(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _states(emulator_server)
    for state in (WaveState.REPORT_ONLY, WaveState.ENFORCED):  # enforced in the store, no live policy yet
        _wave_state(stores, tenant.wave, state)
        assert main(["permfa", "migrate", tenant.wave, "--yes"], environ=app_environ) == 1
        err = capsys.readouterr().err
        assert "would leave them without MFA" in err
        assert f"wave {tenant.wave!r} is {state.value}" in err
    assert _states(emulator_server) == before
    assert stores.kv.values(ledger_namespace(tenant.wave)) == []


def test_migrate_moves_only_covered_registered_users_and_rollback_restores_them(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    before = _states(emulator_server)
    assert main(["permfa", "report"], environ=app_environ) == 0  # the counts waves status shows
    capsys.readouterr()
    # WHEN the operator previews the migration
    code, preview = _run(app_environ, capsys, "migrate", tenant.wave, "--dry-run")
    # THEN it would move exactly the covered, registered users and say why it keeps the others
    assert code == 0
    assert {u["id"] for u in preview["toDisable"]} == {tenant.enforced_registered, tenant.enabled_registered}
    assert [u["id"] for u in preview["notRegistered"]] == [tenant.enabled_unregistered]
    assert [u["id"] for u in preview["excludedFromCa"]] == [tenant.excluded]
    assert [u["id"].lower() for u in preview["breakGlassLeftAlone"] if u["state"] == "enforced"] == [
        tenant.break_glass.lower()
    ]
    assert _states(emulator_server) == before  # a dry run writes nothing
    assert stores.kv.values(ledger_namespace(tenant.wave)) == []
    # WHEN it runs
    started = utc_now()
    code, result = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    # THEN those two are disabled, everyone else keeps their state, break-glass included
    assert code == 0, result
    assert set(result["disabled"]) == {tenant.enforced_registered, tenant.enabled_registered}
    after = _states(emulator_server)
    assert tenant.enforced_registered not in after
    assert tenant.enabled_registered not in after
    for kept in (tenant.enabled_unregistered, tenant.excluded, tenant.break_glass):
        assert after[kept] == before[kept]
    # AND the ledger holds each previous state; the audit log each change
    [page] = stores.kv.values(ledger_namespace(tenant.wave))
    assert {u["id"]: (u["previous"], u["outcome"]) for u in page["users"]} == {
        tenant.enforced_registered: ("enforced", "disabled"),
        tenant.enabled_registered: ("enabled", "disabled"),
    }
    [entry] = [e for e in stores.audit.list(since=started, limit=50) if e.action == "permfa.disable"]
    assert {u["id"]: u["previous"] for u in entry.details["users"]} == {
        tenant.enforced_registered: "enforced",
        tenant.enabled_registered: "enabled",
    }
    # AND waves status still says the wave is not done: the unregistered user waits on per-user MFA
    assert main(["waves", "status"], environ=app_environ) == 0
    status = capsys.readouterr().out
    assert (
        f"{tenant.wave}: NOT DONE, 1 still on per-user MFA although CA enforces the wave (2 moved off"
        in status
    )
    # AND a second run finds nothing left to move (and writes no new ledger page)
    code, again = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0
    assert again["toDisable"] == []
    assert len(stores.kv.values(ledger_namespace(tenant.wave))) == 1
    # WHEN the last user registers and the next run moves them too
    register(emulator_server, tenant.enabled_unregistered)
    code, last = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0
    assert last["disabled"] == [tenant.enabled_unregistered]
    # THEN the wave is done: only the user CA excludes stays on per-user MFA
    assert main(["waves", "status"], environ=app_environ) == 0
    assert f"{tenant.wave}: done (3 moved off, 1 kept (CA excludes them))" in capsys.readouterr().out
    after = _states(emulator_server)
    # WHEN the operator rolls the wave back
    code, plan = _run(app_environ, capsys, "rollback", tenant.wave, "--dry-run")
    assert code == 0
    assert {u["id"]: u["restoreTo"] for u in plan["toRestore"]} == {
        tenant.enforced_registered: "enforced",
        tenant.enabled_registered: "enabled",
        tenant.enabled_unregistered: "enabled",
    }
    assert _states(emulator_server) == after
    code, undone = _run(app_environ, capsys, "rollback", tenant.wave, "--yes")
    # THEN what was there is back; Graph enforces "enabled" at once for a registered user, and says so
    assert code == 0, undone
    now_registered = {tenant.enabled_registered: "enforced", tenant.enabled_unregistered: "enforced"}
    assert _states(emulator_server) == before | now_registered
    assert undone["restored"] == {tenant.enforced_registered: "enforced", **now_registered}
    assert main(["permfa", "rollback", tenant.wave, "--dry-run"], environ=app_environ) == 0
    capsys.readouterr()
    # AND a second rollback has nothing to do
    code, nothing = _run(app_environ, capsys, "rollback", tenant.wave, "--yes")
    assert code == 0
    assert nothing["toRestore"] == []


def test_a_run_changes_at_most_the_waves_blast_radius(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    source = app_environ["WAVEGUARD_CONFIG"]
    text = Path(source).read_text(encoding="utf-8")
    capped = tmp_path / "waveguard.yaml"
    head, wave_block = text.split(f"- name: {tenant.wave}\n", 1)
    assert "blastRadius: 200" in wave_block.split("- name:", 1)[0]  # the example plan's pilot cap
    wave_block = wave_block.replace("blastRadius: 200", "blastRadius: 1", 1)
    capped.write_text(f"{head}- name: {tenant.wave}\n{wave_block}", encoding="utf-8")
    env = {**app_environ, "WAVEGUARD_CONFIG": str(capped)}
    code, first = _run(env, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0, first
    assert len(first["disabled"]) == 1
    assert len(first["overBlastRadius"]) == 1
    code, second = _run(env, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0
    assert len(second["disabled"]) == 1
    assert second["overBlastRadius"] == []
    moved = {tenant.enforced_registered, tenant.enabled_registered}
    assert set(first["disabled"] + second["disabled"]) == moved


def test_without_yes_and_without_a_terminal_migrate_is_a_usage_error(
    app_environ: dict[str, str], tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["permfa", "migrate", tenant.wave], environ=app_environ) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["permfa", "rollback", "nope", "--dry-run"], environ=app_environ) == 2
    assert "wave 'nope' is not in the plan" in capsys.readouterr().err


def _live_require_mfa(emulator: EmulatorHandle) -> dict[str, Any]:
    listed = httpx.get(
        f"{emulator.base_url}/identity/conditionalAccess/policies", headers=ADMIN_HEADERS
    ).json()
    [policy] = [p for p in listed["value"] if p["displayName"] == "WaveGuard - Require MFA"]
    return dict(policy)


@pytest.mark.parametrize("edit", ["exclude a role", "a second enabled copy"])
def test_a_policy_narrowed_in_the_portal_stops_every_migration(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
    edit: str,
) -> None:
    # GIVEN the pilot enforced, then someone edits CA in the portal
    _enforce(app_environ, stores, tenant.wave, capsys)
    policy = _live_require_mfa(emulator_server)
    url = f"{emulator_server.base_url}/identity/conditionalAccess/policies"
    if edit == "exclude a role":
        users = {**policy["conditions"]["users"], "excludeRoles": ["62e90394-69f5-4237-9190-012177145e10"]}
        answer = httpx.patch(
            f"{url}/{policy['id']}",
            json={"conditions": {**policy["conditions"], "users": users}},
            headers=ADMIN_HEADERS,
        )
    else:
        copy = {
            k: v
            for k, v in policy.items()
            if k not in ("id", "createdDateTime", "modifiedDateTime", "templateId")
        }
        copy = {k: v for k, v in copy.items() if not k.startswith("@")}
        copy["grantControls"] = {"operator": "OR", "builtInControls": ["compliantDevice"]}
        answer = httpx.post(url, json=copy, headers=ADMIN_HEADERS)
    assert answer.status_code in (201, 204), answer.text
    before = _states(emulator_server)
    # WHEN the operator migrates THEN it is refused, naming what is wrong, and nothing is written
    assert main(["permfa", "migrate", tenant.wave, "--yes"], environ=app_environ) == 1
    err = capsys.readouterr().err
    assert "does not require MFA of everyone in its groups" in err
    assert ("excludes directory roles" if edit == "exclude a role" else "2 enabled policies are named") in err
    assert _states(emulator_server) == before
    assert stores.kv.values(ledger_namespace(tenant.wave)) == []


def test_rollback_never_writes_a_user_who_joined_the_exclusion_group_since(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    code, result = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0, result
    # WHEN a migrated user becomes an emergency account (put in the exclusion group)
    demo = emulator_server.demo
    assert demo is not None
    add_member(emulator_server, demo.break_glass_group_id, tenant.enforced_registered)
    code, undone = _run(app_environ, capsys, "rollback", tenant.wave, "--yes")
    # THEN rollback restores the others and refuses that one, which keeps per-user MFA off
    assert code == 0, undone
    assert tenant.enforced_registered in undone["refused"]
    assert set(undone["restored"]) == {tenant.enabled_registered}
    assert tenant.enforced_registered not in _states(emulator_server)


def test_one_run_per_wave_at_a_time(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    before = _states(emulator_server)
    claim = stores.idempotency.claim(f"permfa:{tenant.wave}", ttl=timedelta(minutes=5))
    assert claim.acquired
    try:
        assert main(["permfa", "migrate", tenant.wave, "--yes"], environ=app_environ) == 1
        assert "another `permfa migrate` or `rollback` of wave" in capsys.readouterr().err
    finally:
        stores.idempotency.release(f"permfa:{tenant.wave}")
    assert _states(emulator_server) == before


def test_a_wave_whose_users_left_per_user_mfa_cannot_leave_enforcement_first(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    code, result = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0, result
    # WHEN the operator rolls the wave back to report-only THEN it is refused: they would have no MFA
    assert main(["waves", "rollback", tenant.wave, "--yes", "--reason", "test"], environ=app_environ) == 1
    assert f"`waveguard permfa rollback {tenant.wave}`" in capsys.readouterr().err
    assert _live_require_mfa(emulator_server)["state"] == "enabled"
    # AND once their per-user MFA is back, the wave rolls back
    code, undone = _run(app_environ, capsys, "rollback", tenant.wave, "--yes")
    assert code == 0, undone
    assert main(["waves", "rollback", tenant.wave, "--yes", "--reason", "test"], environ=app_environ) == 0


def test_in_an_emergency_the_wave_rolls_back_anyway_and_the_audit_says_who_is_left_without_mfa(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    code, result = _run(app_environ, capsys, "migrate", tenant.wave, "--yes")
    assert code == 0, result
    started = utc_now()
    argv = ["waves", "rollback", tenant.wave, "--yes", "--reason", "CA locks people out", "--accept-no-mfa"]
    assert main(argv, environ=app_environ) == 0
    [entry] = [e for e in stores.audit.list(since=started, limit=50) if e.action == "wave.transition"]
    assert entry.details["leftWithoutMfa"] == 2
    assert _live_require_mfa(emulator_server)["conditions"]["users"]["includeGroups"] == []


def test_a_migration_the_operator_does_not_confirm_writes_nothing(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _enforce(app_environ, stores, tenant.wave, capsys)
    before = _states(emulator_server)
    asked: list[str] = []

    def answer_no(question: str) -> bool:
        asked.append(question)
        return False

    args = argparse.Namespace(
        wave=tenant.wave, dry_run=False, yes=False, json=False, permfa_command="migrate"
    )
    assert run_migrate(args, app_environ, confirm=answer_no, interactive=lambda: True) == 1
    assert asked == ["Disable per-user MFA for 2 user(s)? [y/N] "]
    assert "not migrated: not confirmed" in capsys.readouterr().err
    assert _states(emulator_server) == before
    assert stores.kv.values(ledger_namespace(tenant.wave)) == []
