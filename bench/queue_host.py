"""Queue triggers through the mini-host and Azurite: pickup latency after idling, and batch throughput.

Figures:
- pickup latency after the host has idled, against host.json's maxPollingInterval (the limit that
  keeps alerts from waiting on idle polling): worst / limit must stay at or below 1.0.
- throughput of a queue filled beforehand, messages each spending 50 ms in I/O, with the app's
  host.json batch settings against batchSize 1 (one at a time): the ratio is what batching buys;
  the ceiling is (batchSize + newBatchThreshold) / work time.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueClient

from local.azurite import Azurite
from local.minihost import create_host

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = Path(__file__).resolve().parent / "apps" / "queue_echo"
WORK_SECONDS = 0.05


def _host_json(path: Path, queues: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return path


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _send(queue: QueueClient, n: int) -> None:
    body = json.dumps({"n": n, "sent": time.time()}).encode()
    queue.send_message(base64.b64encode(body).decode())


def _wait_for(path: Path, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(path)
        if len(records) >= count:
            return records
        time.sleep(0.01)
    raise TimeoutError(f"only {len(_records(path))} of {count} messages ran within {timeout:.0f} s")


def _run_host(azurite: Azurite, queues: dict[str, Any], work: float, action: Any, *, prefill: int = 0) -> Any:
    """Run ``action(queue, record_file, started)`` on a started host; ``prefill`` messages wait first."""
    with tempfile.TemporaryDirectory() as tmp:
        queue_name = f"bench-{uuid.uuid4().hex[:12]}"
        record = Path(tmp) / "records.jsonl"
        queue = QueueClient.from_connection_string(azurite.connection_string, queue_name)
        queue.create_queue()
        for n in range(prefill):
            _send(queue, n)
        host = create_host(
            "function_app:app",
            app_dir=APP_DIR,
            host_json=_host_json(Path(tmp) / "host.json", queues),
            http_port=0,
            storage_connection_string=azurite.connection_string,
            environ={
                "BENCH_QUEUE": queue_name,
                "BENCH_RECORD_FILE": str(record),
                "BENCH_WORK_SECONDS": str(work),
            },
        )
        started = time.monotonic()
        host.start()
        try:
            return action(queue, record, started)
        finally:
            host.stop()


def app_queue_settings() -> dict[str, Any]:
    """The queue settings WaveGuard ships in host.json."""
    return dict(json.loads((ROOT / "host.json").read_text())["extensions"]["queues"])


def pickup_latency(azurite: Azurite, *, samples: int = 4, idle_seconds: float = 6.0) -> dict[str, float]:
    """Enqueue after the host has idled long enough to back off fully; time until the function runs."""
    settings = app_queue_settings()
    h, m, s = (float(part) for part in settings["maxPollingInterval"].split(":"))
    limit = h * 3600 + m * 60 + s

    def measure(queue: QueueClient, record: Path, started: float) -> list[float]:
        latencies = []
        for n in range(samples):
            time.sleep(idle_seconds)
            _send(queue, n)
            done = _wait_for(record, n + 1, timeout=limit * 5)[n]
            latencies.append(done["ran"] - done["sent"])
        return latencies

    latencies = _run_host(azurite, settings, 0.0, measure)
    worst = max(latencies)
    return {
        "pickup_worst_s": round(worst, 3),
        "pickup_mean_s": round(sum(latencies) / len(latencies), 3),
        "max_polling_interval_s": limit,
        "pickup_worst_over_limit": round(worst / limit, 3),
    }


def throughput(azurite: Azurite, *, messages: int = 160) -> dict[str, float]:
    """Messages per second with the shipped batch settings, and with batchSize 1 as the baseline."""

    def drain(queue: QueueClient, record: Path, started: float) -> float:
        records = _wait_for(record, messages, timeout=messages * WORK_SECONDS * 4 + 30)
        # From the first invocation to the last: host start-up (app import) is not queue throughput.
        first = min(r["ran"] for r in records) - WORK_SECONDS
        return messages / (max(r["ran"] for r in records) - first)

    shipped = app_queue_settings()
    baseline = {**shipped, "batchSize": 1, "newBatchThreshold": 0}
    rate = _run_host(azurite, shipped, WORK_SECONDS, drain, prefill=messages)
    base_rate = _run_host(azurite, baseline, WORK_SECONDS, drain, prefill=messages)
    return {
        "messages": messages,
        "work_per_message_s": WORK_SECONDS,
        "throughput_msgs_per_s": round(rate, 1),
        "baseline_batch1_msgs_per_s": round(base_rate, 1),
        "throughput_over_baseline": round(rate / base_rate, 2),
    }
