"""The HTTP ingress path stays light: importing it never loads msgraph or WaveGuard's Graph client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.warmup import THREAD_NAME, WARM_SETTING

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "module",
    ["handlers.hr_ingress", "handlers.graph_notifications", "handlers.azure_monitor", "function_app"],
)
def test_importing_the_ingress_or_the_whole_app_does_not_import_msgraph(module: str) -> None:
    # A fresh interpreter: this test process may already have msgraph loaded by other tests.
    # The whole app too: every function is indexed at start-up, so any module-level Graph import
    # would slow the ingress's cold start.
    probe = (
        f"import sys, {module}\n"
        "graph = ('msgraph', 'msgraph_core', 'kiota_abstractions')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in graph or m.startswith('shared.graph')]\n"
        "print(','.join(sorted(loaded)))\n"
    )
    # (the app's warm start, which loads Graph's models on a thread of its own, is off here: this is
    # about what the import itself loads; the next test covers the warm start)
    env = {**os.environ, WARM_SETTING: "false"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_app_warms_graph_on_a_thread_of_its_own_after_indexing() -> None:
    probe = (
        "import sys, threading, function_app\n"
        f"[warm] = [t for t in threading.enumerate() if t.name == {THREAD_NAME!r}]\n"
        "print('daemon' if warm.daemon else 'not-daemon')\n"
        "warm.join(60)\n"
        "print('kiota_http.httpx_request_adapter' in sys.modules)\n"
        "print('msgraph.generated.models.user' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != WARM_SETTING}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    # the Graph request path is loaded; no model class is (onboarding parses none)
    assert result.stdout.split() == ["daemon", "True", "False"]
