"""Nudges through Graph sendMail once per period, and `waveguard waves` against the real services."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from cli.main import main
from local.demo_waves import reset_rollout_state
from local.graph_emulator import EmulatorHandle
from shared.alerting import Alert, open_alert
from shared.config import load_plan_for, load_settings
from shared.rollout.lifecycle import APPROVALS_NAMESPACE, evaluate_waves
from shared.rollout.wave_state import WAVES_NAMESPACE, WaveState, write_wave_state
from shared.state import build_state, utc_now
from tests.aio import aio
from tests.functional.lifecycle.conftest import create_pilot_group, it_user_ids, registration_of

pytestmark = pytest.mark.functional


def _outbox(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulator.admin_url}/outbox").json()["value"])


def _addresses(message: dict[str, Any]) -> list[str]:
    return [r["address"] for r in message["to"]]


async def test_unregistered_members_are_nudged_once_per_period_and_managers_escalated(
    make_deps: Callable[..., Any], emulator_server: EmulatorHandle
) -> None:
    # GIVEN a pilot group of five unregistered IT people, nudges escalating to managers at once
    it = it_user_ids(emulator_server)
    unregistered = sorted(u for u, ok in registration_of(emulator_server, it).items() if not ok)[:5]
    create_pilot_group(emulator_server, unregistered)
    deps, _ = make_deps(lambda *a, **k: _noop(), nudges={"everyDays": 2, "escalateToManagerAfterDays": 0})
    # WHEN the timer runs twice in the same period
    first = await evaluate_waves(deps, correlation_id="n1")
    await evaluate_waves(deps, correlation_id="n2")
    # THEN each got one nudge and each manager one escalation, from the service mailbox
    report = first.nudges[0]
    assert (len(report.sent), len(report.escalated), report.failed) == (5, 5, [])
    outbox = _outbox(emulator_server)
    nudges = [m for m in outbox if m["subject"] == "Action needed: set up multi-factor authentication"]
    escalations = [m for m in outbox if m["subject"].startswith("MFA not set up yet: ")]
    assert (len(nudges), len(escalations)) == (5, 5)
    assert all("waveguard@contoso.com" in str(m["from"]) for m in outbox)
    assert "https://aka.ms/mysecurityinfo" in nudges[0]["body"]


async def _noop() -> None:
    return None


@pytest.fixture
def cli_env(app_environ: dict[str, str]) -> Iterator[dict[str, str]]:
    """The CLI's environment; the shared tables' wave records are cleared before and after."""
    settings = load_settings(app_environ)
    kv, plan = build_state(settings).kv, load_plan_for(settings)
    asyncio.run(reset_rollout_state(aio(kv), plan))
    yield app_environ
    asyncio.run(reset_rollout_state(aio(kv), plan))


def test_status_shows_each_wave_with_gates_and_next_action(
    cli_env: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the pilot registering with its group holding IT
    members = it_user_ids(emulator_server)
    create_pilot_group(emulator_server, members)
    stores = build_state(load_settings(cli_env))
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REGISTERING, utc_now()))
    registered = sum(registration_of(emulator_server, members).values())
    # WHEN the operator asks for the status as JSON
    assert main(["waves", "status", "--json"], environ=cli_env) == 0
    rows = {r["wave"]: r for r in json.loads(capsys.readouterr().out)["waves"]}
    # THEN the pilot shows its members, registration and the failing gate; the next wave waits
    pilot = rows["pilot"]
    assert (pilot["state"], pilot["members"], pilot["registered"]) == (
        "registering",
        len(members),
        registered,
    )
    assert "registration" in pilot["gatesFailing"]
    assert pilot["nextAction"] == "hold"
    assert (rows["finance-hr"]["state"], rows["finance-hr"]["nextAction"]) == ("planned", "wait")
    # AND the table for people has a progress bar per wave
    assert main(["waves", "status"], environ=cli_env) == 0
    table = capsys.readouterr().out
    percent = round(registered / len(members) * 100)
    assert "pilot  [registering since" in table
    assert f"{percent:3d}%  ({registered}/{len(members)})" in table
    assert "next         wait: waiting for the previous wave to be enforced" in table


def test_approve_rollback_and_their_errors_name_the_wave(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["waves", "approve", "nope"], environ=cli_env) == 2
    assert "wave 'nope' is not in the plan (waves: pilot, finance-hr" in capsys.readouterr().err
    assert main(["waves", "approve", "pilot", "--reason", "CAB 42"], environ=cli_env) == 0
    assert "wave 'pilot' (planned): promotion approved" in capsys.readouterr().out
    stores = build_state(load_settings(cli_env))
    approval = stores.kv.get(APPROVALS_NAMESPACE, "pilot")
    assert approval is not None
    assert approval.value["reason"] == "CAB 42"
    # A rollback of a wave that is not enforced is refused, naming the wave and its state
    assert main(["waves", "rollback", "pilot", "--yes"], environ=cli_env) == 2
    assert "wave 'pilot' is planned, not enforced; nothing to roll back" in capsys.readouterr().err
    # Without --yes and nobody to confirm, an enforced wave stays enforced
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now()))
    assert main(["waves", "rollback", "pilot"], environ=cli_env) == 2
    assert "rollback not confirmed (pass --yes)" in capsys.readouterr().err
    assert main(["waves", "approve", "pilot"], environ=cli_env) == 2
    assert "wave 'pilot' is already enforced; nothing to approve" in capsys.readouterr().err


def test_evaluate_dry_run_prints_what_it_would_do_and_changes_nothing(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["waves", "evaluate", "--dry-run"], environ=cli_env) == 0
    out = capsys.readouterr().out
    assert "evaluation (dry run):" in out
    assert "would: start-registering (first wave)" in out
    stores = build_state(load_settings(cli_env))
    assert stores.kv.get(WAVES_NAMESPACE, "pilot") is None


def test_approve_rollback_and_resolve_alert_answer_json_when_asked(
    cli_env: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    create_pilot_group(emulator_server, [])
    assert main(["waves", "approve", "pilot", "--reason", "CAB 43", "--json"], environ=cli_env) == 0
    approval = json.loads(capsys.readouterr().out)
    assert (approval["wave"], approval["state"], approval["reason"]) == ("pilot", "planned", "CAB 43")
    assert approval["approvedBy"].startswith("cli:")
    assert datetime.fromisoformat(approval["approvedAt"]).tzinfo is not None
    stores = build_state(load_settings(cli_env))
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, utc_now()))
    assert main(["waves", "rollback", "pilot", "--yes", "--json"], environ=cli_env) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome == {
        "wave": "pilot",
        "from": "enforced",
        "state": "report-only",
        "policiesSynced": True,
        "reason": "operator rollback",
    }
    alert = Alert(key="wave-sync:pilot:blast-radius", severity="critical", source="test", summary="held")
    asyncio.run(open_alert(aio(stores.kv), "pilot", alert, alert_id="alert-0456"))
    argv = ["waves", "resolve-alert", "pilot", "alert-0456", "--reason", "fixed", "--json"]
    assert main(argv, environ=cli_env) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert (resolved["wave"], resolved["resolved"]["id"], resolved["reason"]) == (
        "pilot",
        "alert-0456",
        "fixed",
    )
