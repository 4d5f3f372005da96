"""create_host(): settings precedence, startup errors, function list, ports; `python -m local.minihost`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from minihost_helpers import FIXTURE_APP, FIXTURE_SETTINGS, StartHost, unique_queue_name, wait_until

from local.minihost import AppLoadError, BindingError, ConfigError, create_host
from local.ports import free_port, port_open, wait_for_port

pytestmark = pytest.mark.functional
REPO = Path(__file__).resolve().parents[3]
STORAGE_SETTING = "AzureWebJobsStorage"  # the Functions host's own (mixed-case) setting name


def test_environment_wins_over_values_explicit_overrides_win_over_both_and_stop_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a variable already in the environment, and settings that set it and another one
    monkeypatch.setenv("MH_QUEUE_OK", "from-environment")
    monkeypatch.delenv("MH_QUEUE_FLAKY", raising=False)
    before = dict(os.environ)
    cwd = os.getcwd()

    # WHEN creating a host (not started) with an explicit override for a third one
    host = create_host(
        app_dir=FIXTURE_APP,
        settings_file=FIXTURE_SETTINGS,
        http_port=0,
        environ={"MH_QUEUE_FAIL": "from-override"},
        storage_connection_string="UseDevelopmentStorage=true",
    )

    # THEN the environment wins over Values, the override wins over everything, and the app dir is the cwd
    assert os.environ["MH_QUEUE_OK"] == "from-environment"
    assert os.environ["MH_QUEUE_FLAKY"] == "mh-flaky"
    assert os.environ["MH_QUEUE_FAIL"] == "from-override"
    assert os.environ[STORAGE_SETTING] == "UseDevelopmentStorage=true"
    assert Path.cwd() == FIXTURE_APP
    queues = {spec.name: getattr(spec.trigger, "queue_name", None) for spec in host.functions}
    assert queues["queue_ok"] == "from-environment"
    # AND stop() puts the process back as it was
    host.stop()
    assert dict(os.environ) == before
    assert os.getcwd() == cwd


def test_the_function_list_reads_like_func_start(start_host: StartHost) -> None:
    running = start_host()
    text = running.host.describe()
    assert text.startswith("Functions:")
    assert f"  health: [GET] {running.api}/health" in text
    assert f"  get_item: [GET] {running.api}/items/{{id}}" in text
    assert "  boom: [*] " in text
    assert f"  queue_ok: queueTrigger (queue {running.queues['ok']})" in text
    assert "  timer_tick: timerTrigger (* * * * * *)" in text


def test_a_missing_module_names_module_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=rf"no nosuch.py in app directory {tmp_path}"):
        create_host("nosuch:app", app_dir=tmp_path)


def test_a_missing_attribute_lists_the_function_apps_found(tmp_path: Path) -> None:
    (tmp_path / "other_app.py").write_text("import azure.functions as func\nmy_app = func.FunctionApp()\n")
    with pytest.raises(AppLoadError, match=r"no attribute 'app'; FunctionApp objects found: \['my_app'\]"):
        create_host("other_app:app", app_dir=tmp_path)


def test_an_import_error_in_the_app_is_reported_with_its_cause(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import definitely_not_installed\n")
    with pytest.raises(AppLoadError, match=r"importing 'broken_app' .* ModuleNotFoundError"):
        create_host("broken_app:app", app_dir=tmp_path)


def test_a_queue_trigger_without_a_storage_connection_is_a_startup_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    cwd = os.getcwd()
    with pytest.raises(BindingError, match=r"queue trigger connection 'AzureWebJobsStorage' is not set"):
        create_host(app_dir=FIXTURE_APP, settings_file=FIXTURE_SETTINGS, http_port=0)
    assert os.getcwd() == cwd  # a failed start leaves the process as it was


def test_bad_host_json_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}))
    with pytest.raises(ConfigError, match=r"extensions.queues.batchSize: expected an integer 1-32, found 64"):
        create_host(app_dir=FIXTURE_APP, host_json=host_json, settings_file=FIXTURE_SETTINGS)


def test_a_busy_port_is_a_clear_error(storage_connection_string: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        host = create_host(
            app_dir=FIXTURE_APP,
            settings_file=FIXTURE_SETTINGS,
            http_port=port,
            storage_connection_string=storage_connection_string,
        )
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port}"):
            host.start()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_python_m_local_minihost_serves_and_exits_cleanly_on_a_signal(
    storage_connection_string: str, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    # GIVEN the mini-host started as a command on a free port
    port = free_port()
    env = {
        **os.environ,
        "AzureWebJobsStorage": storage_connection_string,
        "MH_RECORD_FILE": str(tmp_path / "records.jsonl"),
        "MH_QUEUE_OK": unique_queue_name("cli"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "local.minihost", "--app", "function_app:app"]
    command += ["--app-dir", str(FIXTURE_APP), "--port", str(port), "--settings", str(FIXTURE_SETTINGS)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=30)
        # WHEN a route is called
        response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
        assert response.json() == {"status": "ok"}
        wait_until(lambda: (tmp_path / "records.jsonl").exists())  # the startup timer ran
        # AND the process gets the signal
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # THEN it printed its functions, exited 0 and left nothing listening
    assert process.returncode == 0, stderr.decode()
    assert f"  health: [GET] http://127.0.0.1:{port}/api/health" in stdout.decode()
    assert "GET /api/health 200" in stderr.decode()
    assert not port_open(port)


def test_python_m_local_minihost_reports_a_bad_app_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.minihost", "--app", "nosuch:app", "--app-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "minihost: cannot import 'nosuch'" in result.stderr.decode()
