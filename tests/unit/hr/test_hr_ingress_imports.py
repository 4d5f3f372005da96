"""The HTTP ingress path stays light: importing it never loads msgraph or WaveGuard's Graph client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
