"""A message that fails maxDequeueCount times: archived with its last error, paged as PoisonMessage,
listed by `waveguard poison list`, and processed once replayed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient

from cli.main import main
from local.graph_emulator import EmulatorHandle
from local.minihost import create_host
from shared.envelope import Envelope
from shared.names import ALERTS, HR_EVENTS, poison
from tests.queue_helpers import fresh_queue
from tests.routed_alerts import routed_alerts
from tests.waiting import wait_for

pytestmark = pytest.mark.functional
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def environ(app_environ: dict[str, str]) -> dict[str, str]:
    return dict(app_environ)


@pytest.fixture
def host(environ: dict[str, str], storage_connection_string: str, tmp_path: Path) -> Iterator[object]:
    for name in (HR_EVENTS, poison(HR_EVENTS), ALERTS):
        fresh_queue(storage_connection_string, name)
    host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:00", maxPollingInterval="00:00:00.5")
    (tmp_path / "host.json").write_text(json.dumps(host_json), "utf-8")
    app = {k: v for k, v in environ.items() if k != "AzureWebJobsStorage"}
    minihost = create_host(
        "function_app:app",
        app_dir=ROOT,
        host_json=tmp_path / "host.json",
        http_port=0,
        environ=app,
        storage_connection_string=storage_connection_string,
        grace_period=2.0,
    )
    with minihost:
        yield minihost


def _cli(args: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main(args, environ=environ)
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith(("[", "{")) else out


def test_a_poisoned_message_is_archived_paged_listed_and_replayed(
    host: object,
    environ: dict[str, str],
    storage_connection_string: str,
    emulator_server: EmulatorHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN Graph failing every user lookup (503), and a hire on hr-events
    demo = emulator_server.demo
    assert demo is not None
    httpx.post(
        f"{emulator_server.admin_url}/faults",
        json={"status": 503, "count": 1000, "method": "GET", "path": "^/v1.0/users"},
    ).raise_for_status()
    envelope = Envelope(
        type="employee.terminated",
        id="poison-e2e-1",
        payload={
            "type": "employee.terminated",
            "timestamp": "2026-12-01T08:00:00Z",
            "data": {"employeeId": "E1010"},
        },
    )
    QueueClient.from_connection_string(storage_connection_string, HR_EVENTS).send_message(
        base64.b64encode(envelope.to_json().encode()).decode()
    )
    # WHEN it fails five times / THEN a PoisonMessage alert names the queue and the last error
    alert = wait_for(
        "the PoisonMessage alert",
        lambda: next(
            (
                a
                for a in routed_alerts(storage_connection_string)
                if a.payload["labels"].get("alertname") == "PoisonMessage"
                and a.payload["details"].get("queue") == "hr-events-poison"
            ),
            None,
        ),
        timeout=60,
    )
    details = alert.payload["details"]
    assert details["queue"] == "hr-events-poison"
    assert details["envelopeId"] == "poison-e2e-1"
    assert "503" in (details["lastError"] or "")
    # AND the message is archived (the poison queue itself is drained into the archive)
    code, records = _cli(["poison", "list", "--json"], environ, capsys)
    assert code == 0
    [record] = [r for r in records if r["envelopeId"] == "poison-e2e-1"]
    assert record["sourceQueue"] == HR_EVENTS
    assert record["status"] == "open"
    # WHEN Graph recovers and the operator replays it
    httpx.delete(f"{emulator_server.admin_url}/faults").raise_for_status()
    code, replayed = _cli(
        ["poison", "replay", record["id"], "--reason", "Graph outage over", "--json"], environ, capsys
    )
    assert code == 0
    assert replayed["status"] == "replayed"
    # THEN the worker processes it: the queue empties and no new poison record appears
    queue = QueueClient.from_connection_string(storage_connection_string, HR_EVENTS)
    wait_for(
        "the replayed message to be processed",
        lambda: queue.get_queue_properties().approximate_message_count == 0,
        timeout=30,
    )
    code, after = _cli(["poison", "list", "--json"], environ, capsys)
    assert [r["status"] for r in after if r["envelopeId"] == "poison-e2e-1"] == ["replayed"]
    # AND the replay is audited, by the operator
    from shared.config import load_settings
    from shared.state import build_state

    audit = build_state(load_settings(environ)).audit.list(limit=200)
    [entry] = [e for e in audit if e.action == "poison.replay" and e.target == record["id"]]
    assert entry.actor.startswith("cli:")
    assert entry.reason == "Graph outage over"


def test_unknown_ids_are_named_and_change_nothing(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["poison", "replay", "hr-events-poison:nope", "--reason", "x"], environ=environ) == 2
    assert "hr-events-poison:nope" in capsys.readouterr().err
    assert main(["poison", "drop", "nope", "--reason", "x"], environ=environ) == 2
    assert main(["poison", "show", "nope"], environ=environ) == 2
