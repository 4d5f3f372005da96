"""A variant of the plan a demo step runs with: written to a directory of its own, removed when the
process ends (the steps after it read the file while the demo runs)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["write_demo_plan"]


def write_demo_plan(data: dict[str, Any], name: str) -> Path:
    """``data`` as YAML in a new directory, removed at exit; the file's path."""
    folder = Path(tempfile.mkdtemp(prefix="waveguard-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
