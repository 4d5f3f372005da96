"""HR ingress against a no-op HTTP function on the same mini-host, under the same load.

Both apps run in the mini-host in turn (WaveGuard's ``host.json``, for WaveGuard with
``"functions": ["hr_events"]``, so only the ingress runs and no worker takes the hires). Eight
client threads, each with its own keep-alive connection, send pre-signed requests for
``SECONDS`` each round: WaveGuard's are signed canonical hires (a fresh webhook id each) that are
verified, validated and queued on ``hr-events`` in Azurite; the no-op's are the same bodies, read
and answered 202. Both hosts are up together and the rounds alternate, a no-op round then an HR
round, five pairs: each ratio is the median over the pairs (a drift in the machine's speed touches
both rounds of a pair alike), and the median rounds' own figures are reported next to them.

Goals: HR ingress throughput ≥ 0.25 x the no-op's, and its p99 latency ≤ 3 x the no-op's.

Health: in the same WaveGuard host (``health`` runs too, its Graph probe against the emulator), one
client asks ``GET /api/health`` and then posts hires, one request at a time; goal: the health
check's median latency ≤ 2 x the ingress's.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import httpx

from bench.app_host import app_host, local_settings
from local.azurite import Azurite
from local.graph_emulator import start_emulator
from local.minihost import create_host

ROOT: Final = Path(__file__).resolve().parent.parent
NOOP_APP: Final = ROOT / "bench" / "apps" / "http_noop"
CLIENTS: Final = 8
SECONDS: Final = 4.0
ROUNDS: Final = 5
THROUGHPUT_GOAL: Final = 0.25
P99_GOAL: Final = 3.0
HEALTH_GOAL: Final = 2.0
_RUN: Final = ("hr_events", "health")
_SEQUENTIAL: Final = 200

Request = tuple[str, bytes, dict[str, str]]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _hire(n: int) -> bytes:
    event = {
        "type": "employee.hired",
        "timestamp": "2026-12-01T08:00:00Z",
        "data": {
            "employeeId": f"B{n:07d}",
            "userPrincipalName": f"bench.hire{n}@contoso.com",
            "department": "Finance",
        },
    }
    return json.dumps(event).encode()


def _signed_requests(url: str, secret: str, count: int) -> list[Request]:
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(secret)
    now = datetime.now(UTC)
    out: list[Request] = []
    for n in range(count):
        body = _hire(n)
        msg_id = f"msg_{uuid.uuid4().hex}"
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body.decode()),
        }
        out.append((url, body, headers))
    return out


def _load(requests: list[Request], expect: int) -> dict[str, float]:
    """``CLIENTS`` threads send from ``requests`` for ``SECONDS``; throughput and latencies."""
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors = [0] * CLIENTS
    start = threading.Barrier(CLIENTS + 1)
    stop_at: list[float] = []

    def client(index: int) -> None:
        with httpx.Client(timeout=30) as http:
            mine = requests[index::CLIENTS]
            start.wait()
            for url, body, headers in mine:
                if time.monotonic() >= stop_at[0]:
                    return
                began = time.perf_counter()
                status = http.post(url, content=body, headers=headers).status_code
                latencies[index].append(time.perf_counter() - began)
                if status != expect:
                    errors[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    stop_at.append(time.monotonic() + SECONDS)
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    every = [x for per in latencies for x in per]
    return {
        "requests": float(len(every)),
        "req_per_s": len(every) / elapsed,
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": _percentile(every, 0.99) * 1000,
        "errors": float(sum(errors)),
    }


def _health_against_ingress(health_url: str, hires: list[Request]) -> tuple[float, float]:
    """Median latency (ms) of ``GET /api/health`` and of one hire, one request at a time."""
    with httpx.Client(timeout=30) as http:
        for _ in range(20):  # warm: the probes' clients and the plan check
            http.get(health_url)
        health = []
        for _ in range(_SEQUENTIAL):
            began = time.perf_counter()
            answer = http.get(health_url)
            health.append(time.perf_counter() - began)
            if answer.json().get("status") != "healthy":
                raise RuntimeError(f"health is not healthy: {answer.text}")
        ingress = []
        for url, body, headers in hires:
            began = time.perf_counter()
            http.post(url, content=body, headers=headers).raise_for_status()
            ingress.append(time.perf_counter() - began)
    return statistics.median(health) * 1000, statistics.median(ingress) * 1000


def _paired_rounds(
    noop: Callable[[int], list[Request]], hr: Callable[[int], list[Request]]
) -> tuple[dict[str, float], dict[str, float], float, float]:
    """``ROUNDS`` rounds of the no-op then HR ingress, back to back (a drift in the machine's speed
    over the run touches both sides of each pair alike): the median no-op and HR rounds by
    throughput, and the median over the pairs of HR's throughput and p99 against the no-op's."""
    _load(noop(200), 202)  # warm: first calls build the services, open connections
    _load(hr(200), 202)
    pairs = [(_load(noop(8000), 202), _load(hr(8000), 202)) for _ in range(ROUNDS)]
    throughput = statistics.median(h["req_per_s"] / n["req_per_s"] for n, h in pairs)
    p99 = statistics.median(h["p99_ms"] / n["p99_ms"] for n, h in pairs)
    middle = ROUNDS // 2
    noop_round = sorted((n for n, _ in pairs), key=lambda r: r["req_per_s"])[middle]
    hr_round = sorted((h for _, h in pairs), key=lambda r: r["req_per_s"])[middle]
    errors = sum(n["errors"] + h["errors"] for n, h in pairs)
    return noop_round, {**hr_round, "errors": errors}, throughput, p99


def run(azurite: Azurite) -> dict[str, float]:
    secret = local_settings()["WAVEGUARD_HR_WEBHOOK_SECRET"]
    emulator = start_emulator(port=0, seed="demo")
    # the ingress (and health) alone: no worker takes the hires it queues
    with app_host(azurite.connection_string, _RUN, {"GRAPH_BASE_URL": emulator.base_url}) as host:
        try:
            # Loaded second: both apps are modules named function_app, and the no-op's directory
            # goes first on sys.path (WaveGuard's app object is already built).
            noop_host = create_host(
                "function_app:app",
                app_dir=NOOP_APP,
                host_json=ROOT / "host.json",
                http_port=0,
                storage_connection_string=azurite.connection_string,
                grace_period=2.0,
            )
            with noop_host, host:
                noop_url, url = f"{noop_host.base_url}/api/noop", f"{host.base_url}/api/hr/events"
                noop, ingress, throughput, p99 = _paired_rounds(
                    lambda n: _signed_requests(noop_url, secret, n),
                    lambda n: _signed_requests(url, secret, n),
                )
                health_ms, one_ingress_ms = _health_against_ingress(
                    f"{host.base_url}/api/health", _signed_requests(url, secret, _SEQUENTIAL)
                )
        finally:
            emulator.stop()
    return {
        "clients": float(CLIENTS),
        "noop_req_per_s": round(noop["req_per_s"], 1),
        "hr_req_per_s": round(ingress["req_per_s"], 1),
        "hr_over_noop_throughput": round(throughput, 3),
        "throughput_goal": THROUGHPUT_GOAL,
        "noop_p99_ms": round(noop["p99_ms"], 2),
        "hr_p50_ms": round(ingress["p50_ms"], 2),
        "hr_p99_ms": round(ingress["p99_ms"], 2),
        "hr_over_noop_p99": round(p99, 3),
        "p99_goal": P99_GOAL,
        "health_p50_ms": round(health_ms, 2),
        "hr_single_p50_ms": round(one_ingress_ms, 2),
        "health_over_hr": round(health_ms / one_ingress_ms, 3),
        "health_goal": HEALTH_GOAL,
        "errors": ingress["errors"],
    }


def meets_targets(figures: dict[str, float]) -> bool:
    return (
        figures["hr_over_noop_throughput"] >= THROUGHPUT_GOAL
        and figures["hr_over_noop_p99"] <= P99_GOAL
        and figures["health_over_hr"] <= HEALTH_GOAL
        and figures["errors"] == 0
    )


if __name__ == "__main__":
    from local.azurite import start_azurite

    store = start_azurite()
    try:
        print(json.dumps({"hr_ingress": run(store)}, indent=2), flush=True)
    finally:
        store.stop()
