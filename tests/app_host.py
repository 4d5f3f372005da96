"""The real ``function_app`` in the mini-host, as the functional tests start it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.minihost import create_host
from local.minihost.host import MiniHost

ROOT = Path(__file__).resolve().parents[1]  # the repository


def app_host(
    environ: Mapping[str, str], storage_connection_string: str, *, http_port: int = 0, **options: Any
) -> MiniHost:
    """The app on ``http_port`` (0: a free one) over ``environ`` (its own storage setting is dropped
    for ``storage_connection_string``); not started: use it as a context manager."""
    settings = {k: v for k, v in environ.items() if k != "AzureWebJobsStorage"}
    return create_host(
        "function_app:app",
        app_dir=ROOT,
        http_port=http_port,
        environ=settings,
        storage_connection_string=storage_connection_string,
        grace_period=2.0,
        **options,
    )
