"""Announcements against the Graph emulator and Azurite: a redelivered tick sends nothing twice (the
draft-then-send path through the real Graph client), and `waveguard waves announce --dry-run`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli.main import main
from local.demo_waves import reset_rollout_state
from local.graph_emulator import EmulatorHandle
from shared.config import APP_ROOT, load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.queues import AsyncQueueSender, get_queue_sender
from shared.rollout.lifecycle import evaluate_waves
from shared.rollout.lifecycle.announcements import ledger_namespace
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.services import Services
from shared.state import build_state, utc_now
from tests.aio import aio
from tests.functional.lifecycle.conftest import create_pilot_group, it_user_ids

pytestmark = pytest.mark.functional

SUBJECT = "MFA is coming on {date}"


def _plan(tmp_path: Path) -> Path:
    """The example plan with announcements on for the pilot (3 days' notice), off for the rest."""
    data = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    data["communications"] = {
        "enabled": True,
        "contact": "the service desk <help@contoso.com>",
        "templates": {"reportOnly": {"subject": SUBJECT, "body": "Hello {displayName}: {registerUrl}"}},
    }
    data["waves"][0]["gates"]["announcedDaysBefore"] = 3
    for wave in data["waves"][1:]:
        wave["communications"] = {"enabled": False}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _user(emulator: EmulatorHandle, user_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{emulator.base_url}/users/{user_id}").json())


def _outbox(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    messages = httpx.get(f"{emulator.admin_url}/outbox").json()["value"]
    return [m for m in messages if m["subject"].startswith("MFA is coming on ")]


async def test_a_redelivered_tick_announces_each_member_once_through_drafts(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, tmp_path: Path
) -> None:
    # GIVEN the pilot registering, its group holding four IT people
    env = {**app_environ, "WAVEGUARD_CONFIG": str(_plan(tmp_path))}
    settings = load_settings(env)
    stores = build_state(settings, table_prefix=f"t{uuid.uuid4().hex[:10]}")
    services = Services(
        settings=settings,
        plan=load_plan_for(settings),
        stores=stores,
        queues=AsyncQueueSender(get_queue_sender(settings)),
    )
    deps = services.lifecycle_for(client=build_graph_client(settings))
    members = it_user_ids(emulator_server)[:4]
    create_pilot_group(emulator_server, members)
    await write_wave_state(stores.aio.kv, "pilot", WaveState.REGISTERING, utc_now())
    # WHEN the tick runs and is redelivered (same correlation id), then runs again
    first = await evaluate_waves(deps, correlation_id="tick-1")
    await evaluate_waves(deps, correlation_id="tick-1")
    again = await evaluate_waves(deps, correlation_id="tick-2")
    # THEN each member got the reportOnly announcement once, from the sender mailbox, as a sent draft
    outbox = _outbox(emulator_server)
    mails = sorted(_user(emulator_server, u)["mail"] for u in members)
    assert sorted(r["address"] for m in outbox for r in m["to"]) == mails
    assert all(m["from"] == "waveguard@contoso.com" and m["saveToSentItems"] for m in outbox)
    assert all(
        m["body"].startswith("Hello ") and "https://aka.ms/mysecurityinfo" in m["body"] for m in outbox
    )
    assert first.announcements[0].sent == 4
    assert (again.announcements[0].to_send, again.announcements[0].already_sent) == (0, 4)
    rows = stores.kv.items(ledger_namespace("pilot"))
    assert [v["status"] for _, v in rows] == ["sent"] * 4
    # AND the wave holds on the gate, which status shows like the others
    decision = again.decisions[0]
    assert "announced" in decision.failing
    gate = decision.gate("announced")
    assert gate is not None
    assert gate.detail.startswith("reportOnly: 0/4 members told at least 3 days ago")


@pytest.fixture
def cli_env(app_environ: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**app_environ, "WAVEGUARD_CONFIG": str(_plan(tmp_path))}
    settings = load_settings(env)
    kv, plan = build_state(settings).kv, load_plan_for(settings)
    asyncio.run(reset_rollout_state(aio(kv), plan))
    yield env
    asyncio.run(reset_rollout_state(aio(kv), plan))


def test_announce_dry_run_previews_one_message_and_counts_and_sends_nothing(
    cli_env: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    members = it_user_ids(emulator_server)[:3]
    create_pilot_group(emulator_server, members)
    # A planned wave has no announcement due: the operator is told which stage goes out when
    assert main(["waves", "announce", "pilot"], environ=cli_env) == 2
    assert "wave 'pilot' is planned: it has no announcement due" in capsys.readouterr().err
    assert main(["waves", "announce", "pilot", "--dry-run", "--stage", "later"], environ=cli_env) == 2
    assert "--stage: 'later' is not a stage (stages: reportOnly, enforce)" in capsys.readouterr().err
    assert main(["waves", "announce", "finance-hr", "--dry-run"], environ=cli_env) == 2
    assert "wave 'finance-hr': communications are off" in capsys.readouterr().err
    # WHEN the pilot registers and the operator previews its announcement
    stores = build_state(load_settings(cli_env))
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REGISTERING, utc_now()))
    assert main(["waves", "announce", "pilot", "--dry-run", "--json"], environ=cli_env) == 0
    body = json.loads(capsys.readouterr().out)
    # THEN the counts and one rendered message, and nothing was sent
    assert (body["stage"], body["members"], body["toSend"], body["alreadySent"], body["noMailbox"]) == (
        "reportOnly",
        3,
        3,
        0,
        0,
    )
    assert body["preview"]["subject"].startswith("MFA is coming on ")
    assert body["preview"]["body"].startswith("Hello ")
    assert _outbox(emulator_server) == []
    # AND the human form shows the same
    assert main(["waves", "announce", "pilot", "--dry-run"], environ=cli_env) == 0
    out = capsys.readouterr().out
    assert "wave 'pilot', reportOnly announcement (dry run):" in out
    assert "  to send        3" in out
    # AND sending the enforce stage while registering is refused, naming what can be sent
    assert main(["waves", "announce", "pilot", "--stage", "enforce"], environ=cli_env) == 2
    assert "only the reportOnly announcement can be sent now" in capsys.readouterr().err


def test_the_demo_sends_once_and_says_so(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    from local.demo_announcements import show_announcements

    create_pilot_group(emulator_server, it_user_ids(emulator_server)[:2])
    show_announcements(load_settings(app_environ), app_environ)
    out = capsys.readouterr().out
    assert "dry run: members 2, to send 2" in out
    assert "sent: members 2, to send 2, already sent 0, no mailbox 0; sent 2 in 1 batches" in out
    assert "again: members 2, to send 0, already sent 2" in out
    assert "the emulator delivered 2 such e-mails" in out
