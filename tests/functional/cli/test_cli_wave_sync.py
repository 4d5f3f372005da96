"""`waveguard waves sync` against the emulator and Azurite: dry run, applied with progress, errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from cli.main import main
from local.demo_waves import reset_rollout_state
from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.names import WAVE_WORK
from shared.state import build_state
from tests.aio import aio

pytestmark = pytest.mark.functional
PILOT_GROUP = "WaveGuard - Wave 1 Pilot"


class Tenant:
    def __init__(self, emulator: EmulatorHandle) -> None:
        self.emulator = emulator
        self.graph = httpx.Client(base_url=emulator.base_url, timeout=10, headers=ADMIN_HEADERS)

    def get(self, path: str, **params: str) -> dict[str, object]:
        return dict(self.graph.get(path, params=params).raise_for_status().json())

    def group(self, name: str) -> str:
        [group] = self.get("/groups", **{"$filter": f"displayName eq '{name}'"})["value"]  # type: ignore[misc]
        return str(group["id"])

    def members(self, group_id: str) -> set[str]:
        return {m["id"] for m in self.get(f"/groups/{group_id}/members", **{"$top": "999"})["value"]}  # type: ignore[attr-defined]

    def pilot_selected(self, break_glass_upns: list[str]) -> set[str]:
        """Who the example plan's pilot selects: the IT department and the IT pilot group, no break-glass."""
        it = {
            u["id"] for u in self.get("/users", **{"$filter": "department eq 'IT'", "$top": "999"})["value"]
        }  # type: ignore[attr-defined]
        pilot = self.members(self.group("IT pilot"))
        break_glass = {str(self.get(f"/users/{upn}")["id"]) for upn in break_glass_upns}
        return (it | pilot) - break_glass


@pytest.fixture
def tenant(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, storage_connection_string: str
) -> Iterator[Tenant]:
    """The demo tenant with an empty pilot group; no wave enforced; wave-work empty after the test."""
    settings = load_settings(app_environ)
    stores = build_state(settings)
    asyncio.run(reset_rollout_state(aio(stores.kv), load_plan_for(settings)))
    # the pilot's wave group as WaveGuard created it: the app owns it (Group.Create may rename it)
    pilot = {"displayName": PILOT_GROUP, "ownedByApp": True}
    httpx.post(f"{emulator_server.admin_url}/groups", json=pilot).raise_for_status()
    queue = QueueClient.from_connection_string(storage_connection_string, WAVE_WORK)
    yield Tenant(emulator_server)
    with contextlib.suppress(ResourceNotFoundError):
        queue.clear_messages()


def _break_glass(app_environ: dict[str, str]) -> list[str]:
    plan = load_plan_for(load_settings(app_environ))
    return [str(a.user_principal_name) for a in plan.break_glass.accounts]


def test_dry_run_shows_the_changes_and_writes_nothing(
    tenant: Tenant, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = tenant.pilot_selected(_break_glass(app_environ))
    assert main(["waves", "sync", "pilot", "--dry-run", "--json"], environ=app_environ) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan["adds"]) == expected
    assert plan["removes"] == []
    assert main(["waves", "sync", "pilot", "--dry-run"], environ=app_environ) == 0
    assert f"would add {len(expected)} and remove 0 members" in capsys.readouterr().out
    assert tenant.members(tenant.group(PILOT_GROUP)) == set()


def test_inline_sync_applies_the_plan_with_progress_and_a_second_run_changes_nothing(
    tenant: Tenant, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = tenant.pilot_selected(_break_glass(app_environ))
    assert main(["waves", "sync", "pilot", "--inline"], environ=app_environ) == 0
    out = capsys.readouterr().out
    assert f"add {len(expected)}, remove 0 in 1 chunk(s)" in out
    assert "[####################] 1/1 chunks" in out
    assert f"done: added {len(expected)}, removed 0, failed 0" in out
    assert tenant.members(tenant.group(PILOT_GROUP)) == expected
    # AND a second run finds nothing to do
    assert main(["waves", "sync", "pilot", "--inline", "--json"], environ=app_environ) == 0
    record = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert (record["status"], record["totalChunks"], record["added"]) == ("done", 0, 0)


def test_without_a_worker_the_chunks_stay_queued_and_the_command_says_so(
    tenant: Tenant,
    app_environ: dict[str, str],
    storage_connection_string: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN no app running: nothing consumes wave-work
    assert main(["waves", "sync", "pilot", "--wait", "1"], environ=app_environ) == 1
    err = capsys.readouterr().err
    assert "no worker applied the chunks" in err
    assert "--inline" in err
    # THEN the chunk waits on wave-work for the worker, and nothing was written
    queue = QueueClient.from_connection_string(storage_connection_string, WAVE_WORK)
    [message] = queue.peek_messages(max_messages=32)
    assert Envelope.from_json(base64.b64decode(message.content)).payload["wave"] == "pilot"
    assert tenant.members(tenant.group(PILOT_GROUP)) == set()


def test_unknown_wave_and_missing_group_are_named(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["waves", "sync", "nowave"], environ=app_environ) == 2
    assert "wave 'nowave' is not in the plan" in capsys.readouterr().err
    # a dry run plans a wave whose group the timer has not created yet against an empty group
    assert main(["waves", "sync", "pilot", "--dry-run"], environ=app_environ) == 0
    assert (
        "wave pilot (its group does not exist yet: created when it starts), dry run"
        in capsys.readouterr().out
    )
    # a real sync names the missing group
    assert main(["waves", "sync", "pilot", "--inline"], environ=app_environ) == 1
    assert "its group 'WaveGuard - Wave 1 Pilot' does not exist" in capsys.readouterr().err


def test_a_plan_naming_the_exclusion_group_as_a_wave_group_is_refused_and_break_glass_stays(
    tenant: Tenant,
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    tmp_path: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a plan naming the exclusion group by id, and a new "legal" wave whose group is the same
    # group by displayName (the words differ; only Graph's ids show they are one group)
    from pathlib import Path

    import yaml

    from shared.config import APP_ROOT

    demo = emulator_server.emulator.demo
    assert demo is not None
    doc = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
    doc["breakGlass"]["exclusionGroup"] = {"id": demo.break_glass_group_id}
    legal = {
        "name": "legal",
        "group": {"displayName": "WaveGuard - Break glass exclusion"},
        "selectors": {"departments": ["Legal"]},
    }
    doc["waves"].insert(len(doc["waves"]) - 1, legal)
    path = Path(str(tmp_path)) / "crafted.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    environ = {**app_environ, "WAVEGUARD_CONFIG": str(path)}
    exclusion = tenant.members(demo.break_glass_group_id)
    assert exclusion == set(demo.break_glass_ids)
    # WHEN an operator syncs the wave inline
    code = main(["waves", "sync", "legal", "--inline"], environ=environ)
    # THEN it is refused, naming the plan field, and the exclusion group is untouched
    err = capsys.readouterr().err
    assert code != 0
    assert "waves[3].group resolves to the break-glass exclusion group" in err
    assert tenant.members(demo.break_glass_group_id) == exclusion
    # AND the policy plan refuses it too
    assert main(["policies", "plan"], environ=environ) == 1
    assert "resolves to the break-glass exclusion group" in capsys.readouterr().out


def test_a_wave_group_renamed_in_the_plan_is_shown_and_renamed_by_apply(
    tenant: Tenant, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the pilot's group, recorded by WaveGuard, carries an older name than the plan's
    from shared.rollout.wave_groups import WAVE_GROUPS_NAMESPACE

    settings = load_settings(app_environ)
    stores = build_state(settings)
    group_id = tenant.group(PILOT_GROUP)
    stores.kv.put(
        WAVE_GROUPS_NAMESPACE, "pilot", {"groupId": group_id, "createdAt": "2026-12-01T08:00:00+00:00"}
    )
    tenant.graph.patch(
        f"/groups/{group_id}", json={"displayName": "WaveGuard - Pilot (old name)"}
    ).raise_for_status()
    # THEN waves status, doctor and policies plan all show the drift
    assert main(["waves", "status", "--json"], environ=app_environ) == 0
    [drift] = json.loads(capsys.readouterr().out)["groupRenames"]
    assert drift == {
        "wave": "pilot",
        "groupId": group_id,
        "current": "WaveGuard - Pilot (old name)",
        "planned": PILOT_GROUP,
    }
    assert main(["doctor"], environ=app_environ) == 1
    assert "wave-groups" in capsys.readouterr().out
    assert main(["policies", "plan"], environ=app_environ) in (1, 3)
    assert "rename group" in capsys.readouterr().out
    # WHEN the operator applies / THEN the group is renamed, audited, and doctor is content again
    main(["policies", "apply", "--yes"], environ=app_environ)
    capsys.readouterr()
    assert tenant.get(f"/groups/{group_id}")["displayName"] == PILOT_GROUP
    assert any(e.action == "wave.group.rename" and e.target == group_id for e in stores.audit.list(limit=100))
    assert main(["waves", "status", "--json"], environ=app_environ) == 0
    assert json.loads(capsys.readouterr().out)["groupRenames"] == []
