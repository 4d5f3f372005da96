"""The README's "Try it by hand" block, run as written against `DEMO=0 make run`, on a machine whose
clock is not in UTC: the hire is accepted, its TAP reaches the manager, every CLI line exits 0
(`policies plan` may exit 3, "changes pending") and PagerDuty (the sink) hears of the risky
sign-in. Only the ports (the stack runs on free ones) and the two placeholders the README asks the
reader to fill in are replaced."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_local_stack import _read_until, _start, _stop

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _block() -> str:
    """The shell block under the README's "Try it by hand" heading."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Try it by hand", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's Try it by hand section has no sh block"
    return found.group(1)


def test_the_readme_steps_work_as_written_in_another_time_zone() -> None:
    stack = _start("--no-demo")
    try:
        _read_until(stack, "Press Ctrl-C to stop.", timeout=120)
        graph = stack.url("graph", "")
        heads = httpx.get(
            f"{graph}/v1.0/users", params={"$filter": "jobTitle eq 'Head of Finance'"}, timeout=10
        ).json()["value"]
        manager = someone = heads[0]
        script = (
            _block()
            .replace("http://127.0.0.1:7071", stack.url("host", ""))
            .replace("http://127.0.0.1:7072", graph)
            .replace("http://127.0.0.1:7073", stack.url("sink", ""))
            .replace("--settings local/local.settings.json", "--settings .stack/local.settings.json")
            .replace("<a manager's UPN from the demo tenant>", manager["userPrincipalName"])
            .replace("<a UPN from the demo tenant>", someone["userPrincipalName"])
        )
        assert "<" not in script.replace("<<'PY'", ""), "a placeholder the test does not fill in"
        # `policies plan` exits 3 for "changes pending" (like terraform's plan), not a failure; every
        # other CLI line must exit 0
        script, plans = re.subn(
            r"^(\.venv/bin/waveguard [^#\n]*?\bpolicies plan\b[^#\n]*?)(\s+#.*)?$",
            r"\1 || test $? -eq 3\2",
            script,
            flags=re.MULTILINE,
        )
        assert plans == 1, "the README's block should run `policies plan` once"
        env = {**os.environ, "TZ": "America/New_York"}  # a clock not in UTC: the signature must not care
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={k: v for k, v in env.items() if k not in ("AzureWebJobsStorage", "GRAPH_BASE_URL")},
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        # the hire was accepted (the Python step prints the 202's body: the queued event's id)
        assert re.search(r"\{'id': '[0-9a-f]+'\}", run.stdout), run.stdout
        # its TAP went to the manager (the worker runs after the 202: wait for it)
        deadline = time.monotonic() + 60
        mail: list[dict[str, object]] = []
        while time.monotonic() < deadline and not mail:
            outbox = httpx.get(f"{graph}/_emulator/outbox", params={"to": manager["mail"]}, timeout=10)
            mail = [m for m in outbox.json()["value"] if "ada.lovelace@contoso.com" in json.dumps(m)]
            time.sleep(0.5)
        assert mail, "no TAP e-mail reached the manager"
        # and the risky sign-in reached PagerDuty at the sink (the block waits 20 s before asking)
        incidents = httpx.get(stack.url("sink", "/_sink/incidents"), timeout=10).json()
        assert incidents["value"], incidents
    finally:
        if stack.process.poll() is None:
            _stop(stack)
