"""Start the real mini-host on the fixture app, against the session's Azurite, with queues of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from minihost_helpers import (
    FIXTURE_APP,
    FIXTURE_SETTINGS,
    QUEUE_SETTINGS,
    RunningHost,
    StartHost,
    unique_queue_name,
)

from local.minihost import MiniHost, create_host


@pytest.fixture
def start_host(storage_connection_string: str, tmp_path: Path) -> Iterator[StartHost]:
    """Factory: start a host on a free port with fresh queue names; every host is stopped afterwards."""
    started: list[MiniHost] = []

    def start(
        *,
        environ: dict[str, str] | None = None,
        before_start: Callable[[RunningHost], None] | None = None,
        **options: Any,
    ) -> RunningHost:
        queues = {kind: unique_queue_name(kind) for kind in QUEUE_SETTINGS}
        record_file = tmp_path / f"records-{len(started)}.jsonl"
        env = {"MH_RECORD_FILE": str(record_file), **{QUEUE_SETTINGS[k]: v for k, v in queues.items()}}
        host = create_host(
            "function_app:app",
            app_dir=FIXTURE_APP,
            settings_file=FIXTURE_SETTINGS,
            http_port=0,
            environ={**env, **(environ or {})},
            storage_connection_string=storage_connection_string,
            grace_period=5.0,
            **options,
        )
        started.append(host)
        running = RunningHost(host, record_file, queues, storage_connection_string)
        if before_start is not None:
            before_start(running)
        host.start()
        return running

    try:
        yield start
    finally:
        for host in started:
            host.stop()
