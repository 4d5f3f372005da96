"""The Graph emulator in a process of its own, as Graph is to the app: a benchmark that runs the
emulator in its own process measures WaveGuard, not the emulator sharing its interpreter (and GIL)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from local.ports import free_port

ROOT: Final = Path(__file__).resolve().parent.parent


@contextmanager
def emulator_process(*args: str, startup_timeout: float = 120.0) -> Iterator[str]:
    """``python -m local.graph_emulator ARGS`` on a free port; yields its root URL (``/v1.0`` and
    ``/_emulator`` below it) once it answers, and stops it after.

    Raises:
        RuntimeError: it did not answer within ``startup_timeout`` (seeding 100k users takes seconds).
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.graph_emulator", "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        _wait_up(root, process, startup_timeout)
        yield root
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_up(root: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Graph emulator exited with {process.returncode} before answering")
        try:
            httpx.get(f"{root}/v1.0/users?$top=1", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the Graph emulator did not answer within {timeout:.0f} s")
