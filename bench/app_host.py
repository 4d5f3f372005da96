"""The real app in the mini-host, as a benchmark runs it: only the functions it names (host.json
``functions``), the local settings under the benchmark's own, against the benchmark's storage; and
more instances of it in processes of their own, as a scaled-out app runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cli.main import read_local_settings
from local.minihost import MiniHost, create_host
from local.ports import free_port

ROOT: Final = Path(__file__).resolve().parent.parent


def local_settings() -> dict[str, str]:
    """``local/local.settings.json``'s values (its storage left out: a benchmark brings its own)."""
    values = read_local_settings(ROOT / "local" / "local.settings.json")
    return {k: v for k, v in values.items() if k != "AzureWebJobsStorage"}


@contextmanager
def app_host(storage: str, functions: Sequence[str], environ: Mapping[str, str]) -> Iterator[MiniHost]:
    """The app loaded (not started) with only ``functions`` running; ``environ`` over the local
    settings. The caller starts it (``with host:``)."""
    with tempfile.TemporaryDirectory() as tmp:
        host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
        host_json["functions"] = list(functions)
        path = Path(tmp) / "host.json"
        path.write_text(json.dumps(host_json), "utf-8")
        yield create_host(
            "function_app:app",
            app_dir=ROOT,
            host_json=path,
            http_port=0,
            environ={**local_settings(), **environ},
            storage_connection_string=storage,
            grace_period=2.0,
        )


@contextmanager
def instance_processes(
    storage: str, functions: Sequence[str], environ: Mapping[str, str], count: int
) -> Iterator[list[str]]:
    """``count`` instances of the app, each a mini-host process of its own running only
    ``functions`` (the local settings under ``environ``): what Azure runs when it scales the app out,
    the instances competing for the queues' messages. Yields their base URLs once every one is
    ready; stops them after. A benchmark in its own process measures the app, not its own client."""
    with tempfile.TemporaryDirectory() as tmp:
        host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
        host_json["functions"] = list(functions)
        path = Path(tmp) / "host.json"
        path.write_text(json.dumps(host_json), "utf-8")
        env = {**os.environ, **local_settings(), **environ, "AzureWebJobsStorage": storage}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(count):
                command = [sys.executable, "-m", "bench.fault_host", "--port", str(free_port())]
                command += ["--host-json", str(path), "--lease", "600"]
                processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                    )
                )
            yield [_wait_ready(process) for process in processes]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _wait_ready(process: subprocess.Popen[bytes]) -> str:
    """The instance's base URL, once it says it is ready (functions indexed, pollers started)."""
    stdout = process.stdout
    assert stdout is not None
    for line in stdout:
        if line.startswith(b"ready "):
            # Whatever it prints later is read and dropped: a full pipe would stall it.
            threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
            return line.decode().split()[1]
    raise RuntimeError(f"an instance of the app exited with {process.wait()} before it was ready")
