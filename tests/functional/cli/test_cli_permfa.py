"""`waveguard permfa report` against the Graph emulator (beta per-user MFA states) and Azurite: per
wave the states, who depends on per-user MFA and who is ready to move off it; break-glass apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.main import main
from local.graph_emulator import EmulatorHandle
from shared.config import load_plan_for, load_settings
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState
from shared.state import StateStores, utc_now
from tests.functional.cli.permfa_support import add_member, pilot_group, stores

__all__ = ["stores"]  # the fixture

pytestmark = pytest.mark.functional


def _report(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["permfa", "report", *argv, "--json"], environ=env) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_the_report_sets_each_wave_against_ca_and_keeps_break_glass_apart(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the demo tenant's users on per-user MFA, the pilot's group holding two of them, and the
    # pilot enforced by CA while the Finance wave is not started
    plan = load_plan_for(load_settings(app_environ))
    demo = emulator_server.demo
    assert demo is not None
    on_mfa = {uid: state for uid, state in demo.per_user_mfa.items() if state in ("enabled", "enforced")}
    assert on_mfa
    pilot = plan.waves[0]
    group_id = pilot_group(emulator_server, stores, pilot.name, pilot.group.display_name or "")
    chosen = sorted(on_mfa)[:2]
    for user_id in chosen:
        add_member(emulator_server, group_id, user_id)
    # (and someone put a break-glass account in the pilot's group by hand)
    break_glass = demo.break_glass_ids[0]
    add_member(emulator_server, group_id, break_glass)
    stores.kv.put(
        WAVES_NAMESPACE, pilot.name, {"state": WaveState.ENFORCED.value, "since": utc_now().isoformat()}
    )
    # (a wave enforced in the store but not yet by the live policy is not covered)
    report = _report(app_environ, capsys)
    [pilot_row] = [w for w in report["waves"] if w["wave"] == pilot.name]
    assert pilot_row["caEnforced"] is False
    assert set(chosen) <= {u["id"] for u in pilot_row["notCoveredByCa"]}
    for _ in range(2):  # new policies start report-only; the second apply enables "Require MFA"
        assert main(["policies", "apply", "--yes", "--json"], environ=app_environ) == 0
    capsys.readouterr()
    # WHEN the operator asks for the report once the policy enforces the pilot
    report = _report(app_environ, capsys)
    # THEN the pilot's per-user MFA users are ready to move off it (CA covers them)
    [pilot_row] = [w for w in report["waves"] if w["wave"] == pilot.name]
    assert pilot_row["caEnforced"] is True
    ready = {u["id"] for u in pilot_row["readyToMoveUsers"]}
    assert set(chosen) <= ready
    assert pilot_row["dependOnPerUserMfa"] == 0
    assert sum(pilot_row["states"].values()) == pilot_row["members"]
    # AND the break-glass accounts are listed apart, left alone, never in a wave's rows
    assert {a["id"] for a in report["breakGlass"]} == {i.lower() for i in demo.break_glass_ids}
    assert all(a["leftAlone"] for a in report["breakGlass"])
    members = {u["id"].lower() for w in report["waves"] for u in w["readyToMoveUsers"] + w["notCoveredByCa"]}
    assert break_glass.lower() not in members
    assert pilot_row["members"] == len(chosen)  # the break-glass account in the group is not counted
    # AND waves status and doctor show the saved counts
    assert main(["waves", "status"], environ=app_environ) == 0
    assert f"{pilot.name}: " in capsys.readouterr().out.split("per-user MFA (report of", 1)[1]
    main(["doctor", "--json"], environ=app_environ)
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "per-user-mfa"]
    assert f"{pilot.name}: NOT DONE" in check["detail"]


def test_in_a_wave_ca_does_not_enforce_yet_they_depend_on_per_user_mfa(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = load_plan_for(load_settings(app_environ))
    demo = emulator_server.demo
    assert demo is not None
    pilot = plan.waves[0]
    group_id = pilot_group(emulator_server, stores, pilot.name, pilot.group.display_name or "")
    user_id = next(uid for uid, state in sorted(demo.per_user_mfa.items()) if state == "enforced")
    add_member(emulator_server, group_id, user_id)
    stores.kv.put(
        WAVES_NAMESPACE, pilot.name, {"state": WaveState.REPORT_ONLY.value, "since": utc_now().isoformat()}
    )
    report = _report(app_environ, capsys, "--wave", pilot.name)
    [row] = report["waves"]
    assert row["caEnforced"] is False
    assert user_id in {u["id"] for u in row["notCoveredByCa"]}
    assert row["readyToMove"] == 0
    # --wave saves nothing for waves status
    assert stores.kv.get(PERMFA_NAMESPACE, REPORT_KEY) is None


def test_an_unknown_wave_is_a_usage_error(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["permfa", "report", "--wave", "nope"], environ=app_environ) == 2
    assert "wave 'nope' is not in the plan" in capsys.readouterr().err
