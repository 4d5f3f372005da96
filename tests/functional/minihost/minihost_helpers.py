"""Helpers for the mini-host functional tests: the fixture app, its queues and its recorded observations."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from local.minihost import MiniHost
from tests.waiting import wait_for

FIXTURE_APP = Path(__file__).resolve().parents[2] / "fixtures" / "minihost_app"
FIXTURE_SETTINGS = FIXTURE_APP / "local.settings.json"
QUEUE_SETTINGS = {
    "ok": "MH_QUEUE_OK",
    "flaky": "MH_QUEUE_FLAKY",
    "fail": "MH_QUEUE_FAIL",
    "async": "MH_QUEUE_ASYNC",
    "slow": "MH_QUEUE_SLOW",
}


def unique_queue_name(kind: str) -> str:
    """3-63 lowercase characters, unique per test."""
    return f"mh-{kind}-{uuid.uuid4().hex[:16]}"


def b64(body: str | bytes) -> str:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return base64.b64encode(raw).decode("ascii")


@dataclass
class RunningHost:
    host: MiniHost
    record_file: Path
    queues: dict[str, str]  # kind ("ok", "flaky", ...) -> queue name
    connection_string: str

    @property
    def api(self) -> str:
        return f"{self.host.base_url}/api"

    def queue(self, kind_or_name: str) -> QueueClient:
        name = self.queues.get(kind_or_name, kind_or_name)
        return QueueClient.from_connection_string(self.connection_string, name)

    def send(self, kind: str, body: str | bytes) -> str:
        """Send a base64-encoded message (as the Functions host expects); return its id."""
        return str(create_queue(self.queue(kind)).send_message(b64(body)).id)

    def records(self, function: str | None = None) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        lines = self.record_file.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        return [row for row in rows if function is None or row["function"] == function]

    def wait_for_records(self, function: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return wait_until(lambda: rows if len(rows := self.records(function)) >= count else None, timeout)


def wait_until[T](probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something other than None/False."""
    return wait_for("the condition", probe, timeout=timeout, interval=interval)


def create_queue(client: QueueClient) -> QueueClient:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def visible_messages(client: QueueClient) -> list[Any]:
    """Messages visible now; none while the host has not created the queue yet."""
    try:
        return list(client.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


StartHost = Callable[..., RunningHost]
