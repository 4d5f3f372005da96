"""`waveguard doctor` against real Azurite and the Graph emulator: says what is wrong, exits non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cli.main import main
from local.graph_emulator import BREAK_GLASS_UPNS, EmulatorHandle
from local.ports import free_port

pytestmark = pytest.mark.functional


def test_healthy_stack_passes_every_check(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN Azurite, the emulator's demo tenant and the example plan
    # WHEN doctor runs
    code = main(["doctor"], environ=app_environ)
    # THEN every check passes, including the break-glass set-up found through Graph
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("settings", "config", "storage", "graph", "break-glass"):
        assert f"[ok  ] {name}" in out
    assert "All checks passed." in out


def test_json_output_lists_each_check(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--json"], environ=app_environ)
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "settings",
        "config",
        "storage",
        "graph",
        "break-glass",
        "tenant",
        "wave-groups",
        "per-user-mfa",
    ]


def test_break_glass_account_outside_the_exclusion_group_is_reported(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN someone removed a break-glass account from the exclusion group
    group_id = emulator_server.demo.break_glass_group_id
    user_id = emulator_server.demo.break_glass_ids[0]
    response = httpx.delete(f"{emulator_server.base_url}/groups/{group_id}/members/{user_id}/$ref")
    assert response.status_code == 204
    # WHEN doctor runs
    code = main(["doctor"], environ=app_environ)
    # THEN it fails and names the account
    out = capsys.readouterr().out
    assert code == 1
    assert f"break-glass account {BREAK_GLASS_UPNS[0]} is not a member of the exclusion group" in out


def test_unreachable_storage_is_named_with_a_hint(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env = {
        **app_environ,
        "AzureWebJobsStorage": app_environ["AzureWebJobsStorage"].replace(
            app_environ["AzureWebJobsStorage"].split("QueueEndpoint=")[1].split(";")[0],
            f"http://127.0.0.1:{port}/devstoreaccount1",
        ),
    }
    code = main(["doctor"], environ=env)
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] storage" in out
    assert "is Azurite running" in out


def test_bad_plan_names_the_file_and_field(
    app_environ: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a plan whose first wave's gate is out of range
    text = (
        Path("config/waveguard.yaml")
        .read_text()
        .replace("minRegistrationRate: 0.9 ", "minRegistrationRate: 1.5 ")
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    # WHEN doctor runs with it
    code = main(["--config", str(plan), "doctor"], environ=app_environ)
    # THEN the config check fails, naming the file and the dotted path
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] config" in out
    assert "waves[0].gates.minRegistrationRate" in out
    assert "plan.yaml" in out


def test_invalid_setting_is_named(app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor"], environ={**app_environ, "GRAPH_TIMEOUT_SECONDS": "soon"})
    out = capsys.readouterr().out
    assert code == 1
    assert "GRAPH_TIMEOUT_SECONDS" in out


def test_missing_settings_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--settings", str(tmp_path / "nope.json"), "doctor"], environ={})
    assert code == 2
    assert "--settings" in capsys.readouterr().err
