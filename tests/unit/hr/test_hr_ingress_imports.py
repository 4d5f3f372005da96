"""The HTTP ingress path stays light: importing it never loads msgraph or WaveGuard's Graph client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_ingress_handler_does_not_import_msgraph() -> None:
    # A fresh interpreter: this test process may already have msgraph loaded by other tests.
    probe = (
        "import sys, handlers.hr_ingress\n"
        "graph = ('msgraph', 'msgraph_core', 'kiota_abstractions')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in graph or m == 'shared.graph.client']\n"
        "print(','.join(sorted(loaded)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
