"""The real app in the mini-host, as a benchmark runs it: only the functions it names (host.json
``functions``), the local settings under the benchmark's own, against the benchmark's storage."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cli.main import read_local_settings
from local.minihost import MiniHost, create_host

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
