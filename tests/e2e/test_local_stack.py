"""`make run` as a user runs it: the whole stack comes up healthy, demos, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local.ports import free_ports, port_open
from tests.browser import PHONE, check_page, unavailable

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "local" / "local.settings.json"


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: list[str]

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"


def _start(*extra: str) -> RunningStack:
    names = ("host", "graph", "blob", "queue", "table", "sink")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "run", *args, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return RunningStack(process, ports, [])


def _read_until(stack: RunningStack, marker: str, timeout: float) -> str:
    """Collect the stack's output until a line contains ``marker``."""
    assert stack.process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stack.process.stdout.readline()
        if not line and stack.process.poll() is not None:
            break
        stack.output.append(line)
        if marker in line:
            return "".join(stack.output)
    raise AssertionError(f"{marker!r} not printed within {timeout:.0f} s; output:\n{''.join(stack.output)}")


def _stop(stack: RunningStack) -> int:
    stack.process.send_signal(signal.SIGINT)
    try:
        out, _ = stack.process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        raise
    stack.output.append(out)
    return stack.process.returncode


@pytest.fixture
def stack_without_demo() -> Iterator[RunningStack]:
    stack = _start("--no-demo")
    try:
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait()


def test_stack_serves_health_graph_and_stops_cleanly_on_ctrl_c(stack_without_demo: RunningStack) -> None:
    stack = stack_without_demo
    # GIVEN `DEMO=0 make run` / WHEN it says it is running
    banner = _read_until(stack, "Press Ctrl-C to stop.", timeout=90)
    # THEN anonymous health is 200 and says only "healthy"
    health = httpx.get(stack.url("host", "/api/health"), timeout=10)
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "healthy"}
    # AND the details, with the function key, show every check passing
    key = json.loads(SETTINGS.read_text("utf-8"))["FunctionKeys"]["default"]
    details = httpx.get(stack.url("host", "/api/health/details"), params={"code": key}, timeout=10)
    assert details.status_code == 200, details.text
    assert set(details.json()["checks"]) == {"config", "storage", "graph"}
    assert httpx.get(stack.url("host", "/api/health/details"), timeout=10).status_code == 401
    # AND the emulator answers Graph-shaped pages
    page = httpx.get(stack.url("graph", "/v1.0/users?$top=5"), timeout=10).json()
    assert len(page["value"]) == 5
    assert "@odata.nextLink" in page
    # AND the operator CLI the banner names reaches this stack on its moved ports
    [hint] = [line for line in banner.splitlines() if "Operator CLI" in line]
    settings = hint.split("--settings ")[1].split()[0]
    assert settings == ".stack/local.settings.json"
    doctor = subprocess.run(
        [sys.executable, "-m", "cli.main", "--settings", settings, "doctor", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "GRAPH_BASE_URL")},
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    # AND the receiver sink records deliveries, and the banner says where to read them
    assert stack.url("sink", "/_sink/events") in banner
    pagerduty = httpx.post(
        stack.url("sink", "/v2/enqueue"),
        json={"routing_key": "x" * 32, "event_action": "resolve", "dedup_key": "stack-test"},
        timeout=10,
    )
    assert pagerduty.status_code == 202, pagerduty.text
    events = httpx.get(stack.url("sink", "/_sink/events"), params={"kind": "pagerduty"}, timeout=10).json()
    assert [e["status"] for e in events["value"]] == [202]
    # WHEN Ctrl-C / THEN it exits 0 and nothing listens any more
    assert _stop(stack) == 0, "".join(stack.output)
    assert [name for name, port in stack.ports.items() if port_open(port)] == []
    assert "Stopped: every port is closed." in "".join(stack.output)


def test_stack_refuses_to_start_when_a_port_is_taken() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "local.stack", "run", "--no-demo", "--host-port", str(taken)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"mini-host port {taken}" in result.stderr
    assert "already in use" in result.stderr


def test_two_services_given_one_port_are_refused_before_anything_starts() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.stack",
            "run",
            "--no-demo",
            "--sink-port",
            "10002",
            "--table-port",
            "10002",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--table-port and --sink-port are both 10002" in result.stderr
    assert "Stopping the stack" not in result.stdout, "nothing should have been started"


def test_free_ports_are_distinct_even_when_many_are_asked_for() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64


def test_demo_shows_each_step_then_serves(tmp_path: Path) -> None:
    stack = _start()
    try:
        out = _read_until(stack, "Press Ctrl-C to stop.", timeout=240)
    finally:
        code = _stop(stack) if stack.process.poll() is None else stack.process.returncode
    for step in ("1. Health", "2. The rollout", "3. The tenant", "4. The operator", "5. New", "6. Wave"):
        assert step in out
    assert "HTTP 200: healthy" in out
    assert "in the exclusion group" in out
    assert "All checks passed." in out
    assert "demo step '" not in out, "a demo step failed"
    assert "waveguard permfa migrate pilot: " in out  # the enforced pilot moves off per-user MFA
    # the CLI hints name the settings file for the stack's moved ports, as the banner does
    cli = ".venv/bin/waveguard --settings .stack/local.settings.json"
    assert f"`{cli} permfa rollback pilot`" in out
    assert f"`{cli} alerts list`" in out
    assert "(MFA-related: True)" in out  # the service desk's signed ticket
    assert "the same delivery again (at least once): unchanged" in out
    assert "rollout-report.html" in out
    assert code == 0
    _the_demos_report_opens_in_a_browser(tmp_path)


def _the_demos_report_opens_in_a_browser(tmp_path: Path) -> None:
    """The report the demo wrote, opened from disk at a phone's width: its charts drawn, nothing
    fetched, no sideways scroll (the browser part says why it is skipped where Chromium is missing)."""
    report = ROOT / ".stack" / "rollout-report.html"
    assert report.stat().st_size > 10_000
    why = unavailable()
    if why is not None:
        print(f"the demo's report was not opened in a browser: {why}")
        return
    shot = tmp_path / "demo-report-390px.png"
    check = check_page(report.as_uri(), screenshot=shot)
    assert len(check.charts) >= 4, check.charts  # the pilot's timeline, registration, failures, per-user MFA
    assert all(c["marks"] > 0 and c["width"] <= PHONE["width"] for c in check.charts), check.charts
    assert check.scroll_width <= PHONE["width"]
    assert check.requests == [report.as_uri()]
    assert check.problems == []
    print(f"the demo's report, 390 px wide: {shot}")
