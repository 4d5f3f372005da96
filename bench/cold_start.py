"""Cold start: the first ``hr_worker`` invocation of a fresh process against the ones after it.

Each scenario runs in a new Python process (nothing imported before), which starts the real app in
the mini-host with only ``hr_worker`` (host.json ``functions``), against Azurite and the Graph
emulator, and onboards provisioned Finance hires one at a time, each timed as the host logs it
("Executed hr_worker (Succeeded, N ms)"). Scenarios:

- ``waiting``: the first hire is on the queue when the host starts (a scale-out for a backlog);
- ``later``: it arrives 5 s after the host started (an instance that was already up);

each with the warm start on (the services built and Graph's models loaded on a thread at start)
and off (``WAVEGUARD_WARM_START=false``). Reported: the app's load time (``import function_app``
and indexing), the first invocation, the median of the next ``WARM`` and their ratio. Goal: first
≤ 3 x warm. This machine sets ``PYTHONDONTWRITEBYTECODE=1``: imports here include compiling.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
WARM: Final = 8
GOAL: Final = 3.0
LATER_S: Final = 5.0
SCENARIOS: Final = (("waiting", True), ("waiting", False), ("later", True), ("later", False))
_EXECUTED: Final = re.compile(r"Executed hr_worker \(Succeeded, (\d+) ms\)")


def run(azurite: Any) -> dict[str, float]:
    """Every scenario in a fresh process; their figures, flattened."""
    from local.graph_emulator import start_emulator

    emulator = start_emulator(port=0, seed="demo")
    try:
        figures: dict[str, float] = {}
        for scenario, warm in SCENARIOS:
            config = {
                "scenario": scenario,
                "warm": warm,
                "storage": azurite.connection_string,
                "graph": emulator.base_url,
                "admin": emulator.admin_url,
                "head": emulator.demo.head_ids["Finance"],
            }
            child = subprocess.run(
                [sys.executable, "-m", "bench.cold_start", json.dumps(config)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            if child.returncode != 0 or not lines:
                raise RuntimeError(f"cold start {scenario}: {child.stderr[-2000:]}")
            result = json.loads(lines[-1])
            name = f"{scenario}_{'warm_start' if warm else 'no_warm_start'}"
            for key, value in result.items():
                figures[f"{name}_{key}"] = value
        return figures
    finally:
        emulator.stop()


def meets_targets(figures: dict[str, float]) -> bool:
    return figures["later_warm_start_first_over_warm"] <= GOAL


def _child(config: dict[str, Any]) -> dict[str, float]:
    import httpx
    from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

    from bench.app_host import app_host
    from shared.envelope import Envelope
    from shared.names import HR_EVENTS

    durations: list[float] = []
    seen = threading.Condition()

    class Executed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = _EXECUTED.search(record.getMessage())
            if found:
                with seen:
                    durations.append(float(found.group(1)))
                    seen.notify_all()

    logging.getLogger().addHandler(Executed())
    logging.getLogger().setLevel(logging.INFO)
    queue = QueueClient.from_connection_string(
        config["storage"], HR_EVENTS, message_encode_policy=BinaryBase64EncodePolicy()
    )
    try:
        queue.create_queue()
    except Exception:  # exists
        queue.clear_messages()
    graph = httpx.Client(timeout=30)

    def hire() -> None:
        n = uuid.uuid4().hex[:10]
        upn = f"cold.{n}@contoso.com"
        user = {"userPrincipalName": upn, "mail": upn, "employeeId": f"C{n}", "department": "Finance"}
        graph.post(f"{config['admin']}/users", json={**user, "manager": config["head"]}).raise_for_status()
        event = {
            "type": "employee.hired",
            "timestamp": "2026-12-01T08:00:00Z",
            "data": {"employeeId": f"C{n}", "userPrincipalName": upn, "department": "Finance"},
        }
        envelope = Envelope(type="employee.hired", payload=event, id=uuid.uuid4().hex)
        queue.send_message(envelope.to_json().encode())

    def wait_for(count: int) -> None:
        with seen:
            if not seen.wait_for(lambda: len(durations) >= count, timeout=60):
                raise RuntimeError(f"hr_worker ran {len(durations)} of {count} times")

    environ = {
        "GRAPH_BASE_URL": config["graph"],
        "WAVEGUARD_WARM_START": "true" if config["warm"] else "false",
    }
    if config["scenario"] == "waiting":
        hire()
    began = time.perf_counter()
    with app_host(config["storage"], ["hr_worker"], environ) as host:
        load_s = time.perf_counter() - began
        with host:
            if config["scenario"] == "later":
                time.sleep(LATER_S)
                before = set(sys.modules)
                hire()
            wait_for(1)
            if config["scenario"] == "later":  # what the first hire imported that the warm-up did not
                missed = sorted(
                    m for m in set(sys.modules) - before if not m.startswith("msgraph.generated.models")
                )
                sys.stderr.write("first hire imported: " + (", ".join(missed) or "nothing new") + "\n")
            for n in range(WARM):
                hire()
                wait_for(n + 2)
    first, warm = durations[0], statistics.median(durations[1:])
    return {
        "app_load_s": round(load_s, 3),
        "first_ms": first,
        "warm_ms": warm,
        "first_over_warm": round(first / warm, 2),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(_child(json.loads(sys.argv[1]))), flush=True)
    else:
        from local.azurite import start_azurite

        store = start_azurite()
        try:
            print(json.dumps({"cold_start": run(store)}, indent=2), flush=True)
        finally:
            store.stop()
