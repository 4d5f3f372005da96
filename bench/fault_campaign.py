"""`make chaos`: the fault campaign. The same seeded HR workload and wave ticks run twice through the
real app (mini-host child process, Azurite on disk, the Graph emulator): once clean, once with 10 %
of Graph requests failing (429/503), the host SIGKILLed twice and Azurite restarted once. The end
states are compared: effects lost, effects duplicated (TAPs, e-mails, group adds) and poisoned
messages, each with a goal of 0. Figures go to ``bench/results/latest.json`` (key ``fault_campaign``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from bench.campaign_state import EndState, capture_end_state, compare, queue_depth
from bench.fault_events import Workload, build_workload, send_event
from local.azurite import Azurite, start_azurite
from local.graph_emulator import EmulatorHandle, start_emulator
from local.ports import free_port, free_ports, wait_for_port
from shared.names import HR_EVENTS, WAVE_WORK
from shared.state.idempotency import DEFAULT_IN_PROGRESS_EXPIRY

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results"
# Test-only secrets for the campaign's own plan (never used anywhere else).
ENVIRON: Final = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": "whsec_ZmF1bHQtY2FtcGFpZ24tb25seS1zZWNyZXQ=",
    "PAGERDUTY_ROUTING_KEY": "FaultCampaignRoutingKey000000000",
    "TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/teams",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "fault-campaign-client-state",
    # Wave ticks every 5 s: the rollout runs next to the HR traffic.
    "WAVEGUARD_WAVE_SCHEDULE": "*/5 * * * * *",
    "WAVEGUARD_SUBSCRIPTION_SCHEDULE": "0 0 */6 * * *",
    "WAVEGUARD_GROUP_RESYNC_SCHEDULE": "0 30 2 * * *",
    "WAVEGUARD_RISK_SCHEDULE": "0 0 0 1 1 *",
    "WAVEGUARD_TELEMETRY": "off",
    "PYTHONUNBUFFERED": "1",
}
# A killed invocation's message comes back when its lease ends; as on Azure (10 min lease, 6 min
# claims), the lease outlasts the idempotency claim the dead worker held, so it is taken over.
LEASE_SECONDS: Final = DEFAULT_IN_PROGRESS_EXPIRY.total_seconds() + 30
FAULT_RATE: Final = 0.10
SEND_SECONDS: Final = 40.0


@dataclass
class Chaos:
    """What to break and when (seconds after the first event): derived from the seed."""

    kills: tuple[float, ...] = ()
    storage_restart: float | None = None
    fault_rate: float = 0.0
    done: list[str] = field(default_factory=list)

    @classmethod
    def from_seed(cls, seed: int) -> Chaos:
        rng = random.Random(seed * 7919)
        kills = tuple(sorted(round(rng.uniform(6, SEND_SECONDS - 6), 1) for _ in range(2)))
        return cls(
            kills=kills, storage_restart=round(rng.uniform(8, SEND_SECONDS - 8), 1), fault_rate=FAULT_RATE
        )


class Host:
    """The mini-host child process (its own process group, so a SIGKILL takes all of it)."""

    def __init__(self, port: int, host_json: Path, env: dict[str, str], log: Path, lease: float) -> None:
        self.port, self.host_json, self.env, self.log, self.lease = port, host_json, env, log, lease
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        cmd = [
            sys.executable,
            "-m",
            "bench.fault_host",
            "--port",
            str(self.port),
            "--host-json",
            str(self.host_json),
            "--lease",
            str(self.lease),
        ]
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1
        wait_for_port(self.port, timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class RunResult:
    """One run: its end state, how the deliveries were answered, and what was broken."""

    end: EndState
    answers: Counter[int]
    sender_attempts: int
    faults_injected: int
    chaos: list[str]
    seconds: float


def _plan(tmp: Path) -> Path:
    plan = yaml.safe_load((ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
    # Provisioning re-checks in seconds; every hire here already exists, so they never wait long.
    plan["newHires"]["provisioningRetry"] = {
        "budgetHours": 0.02,
        "initialDelaySeconds": 1,
        "maxDelaySeconds": 5,
        "backoffFactor": 2,
    }
    path = tmp / "waveguard.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), "utf-8")
    return path


def _host_json(tmp: Path) -> Path:
    host = json.loads((ROOT / "host.json").read_text("utf-8"))
    host["extensions"]["queues"].update(visibilityTimeout="00:00:02", maxPollingInterval="00:00:01")
    path = tmp / "host.json"
    path.write_text(json.dumps(host), "utf-8")
    return path


def _directory(emulator: EmulatorHandle) -> tuple[list[dict[str, Any]], dict[str, str]]:
    http = httpx.Client(timeout=30)
    people: list[dict[str, Any]] = []
    url: str | None = f"{emulator.base_url}/users?$select=id,employeeId,userPrincipalName,department&$top=999"
    while url:
        page = http.get(url).raise_for_status().json()
        people.extend(page["value"])
        url = page.get("@odata.nextLink")
    demo = emulator.demo
    assert demo is not None, "the campaign needs the demo tenant"
    by_id = {p["id"]: p for p in people}
    heads = {dept: by_id[head]["userPrincipalName"] for dept, head in demo.head_ids.items()}
    head_ids = set(demo.head_ids.values())
    employees = [p for p in people if p.get("employeeId") and p["id"] not in head_ids]
    return sorted(employees, key=lambda p: p["employeeId"]), heads


def _create_hires(emulator: EmulatorHandle, workload: Workload) -> None:
    body = [
        {
            "userPrincipalName": h.upn,
            "mail": h.upn,
            "employeeId": h.employee_id,
            "displayName": f"Hire {h.employee_id}",
            "department": h.department,
            "country": h.country,
            "manager": h.manager_upn,
        }
        for h in workload.hires
    ]
    httpx.post(f"{emulator.admin_url}/users", json=body, timeout=60).raise_for_status()


def _say(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", flush=True)


def run_once(
    *,
    events: int,
    seed: int,
    chaos: Chaos,
    label: str,
    settle_timeout: float,
    lease: float,
    keep: Path | None = None,
) -> RunResult:
    """One whole run on fresh services; returns its end state."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"waveguard-{label}-") as raw_tmp:
        tmp = Path(raw_tmp)
        ports = dict(zip(("blob", "queue", "table"), free_ports(3), strict=True))
        azurite_dir = tmp / "azurite"
        azurite_dir.mkdir()

        def start_storage() -> Azurite:
            return start_azurite(
                blob_port=ports["blob"],
                queue_port=ports["queue"],
                table_port=ports["table"],
                in_memory=False,
                location=str(azurite_dir),
                log_file=str(tmp / "azurite.log"),
            )

        azurite = start_storage()
        emulator = start_emulator(port=0, seed="demo")
        host: Host | None = None
        try:
            people, heads = _directory(emulator)
            workload = build_workload(people, heads, total=events, seed=seed)
            _create_hires(emulator, workload)
            env = {
                **os.environ,
                **ENVIRON,
                "AzureWebJobsStorage": azurite.connection_string,
                "GRAPH_BASE_URL": emulator.base_url,
                "WAVEGUARD_CONFIG": str(_plan(tmp)),
            }
            host = Host(free_port(), _host_json(tmp), env, tmp / "host.log", lease)
            host.start()
            api = f"http://127.0.0.1:{host.port}/api"
            if chaos.fault_rate:
                # Two rules: the first fails p of requests, the second p of the rest (together ~rate).
                half = chaos.fault_rate / 2
                httpx.post(
                    f"{emulator.admin_url}/faults",
                    json=[
                        {"status": 429, "probability": half, "retryAfter": 1},
                        {"status": 503, "probability": half / (1 - half)},
                    ],
                ).raise_for_status()
            answers, attempts = _send_all(
                api, emulator.admin_url, workload, chaos, host, start_storage, azurite_ref := [azurite]
            )
            azurite = azurite_ref[0]
            _say(
                f"{label}: {len(workload.events)} deliveries answered {dict(answers)}; waiting for the queues"
            )
            _settle(azurite, timeout=settle_timeout)
            faults = httpx.get(f"{emulator.admin_url}/faults").json()["value"]
            injected = sum(int(rule.get("hits", 0)) for rule in faults)
            httpx.delete(f"{emulator.admin_url}/faults")
            end = capture_end_state(emulator, azurite.connection_string, workload)
        finally:
            if host is not None:
                host.stop()
            emulator.stop()
            azurite.stop()
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for log in ("host.log", "azurite.log"):
                    if (tmp / log).exists():
                        shutil.copy(tmp / log, keep / f"{label}-{log}")
    return RunResult(end, answers, attempts, injected, chaos.done, time.monotonic() - started)


def _send_all(
    api: str,
    admin: str,
    workload: Workload,
    chaos: Chaos,
    host: Host,
    start_storage: Callable[[], Azurite],
    azurite_ref: list[Azurite],
) -> tuple[Counter[int], int]:
    """Send every delivery, paced over SEND_SECONDS, breaking things at their times. A department
    change reaches Entra first (as HR-driven provisioning would write it), then the webhook: the
    rollout timer's re-sync reads Entra, and both must agree on where the person belongs."""
    secret = ENVIRON["WAVEGUARD_HR_WEBHOOK_SECRET"]
    start = time.monotonic()
    pending = sorted(
        [(t, "kill") for t in chaos.kills]
        + ([(chaos.storage_restart, "storage")] if chaos.storage_restart is not None else [])
    )
    stop = threading.Event()

    def breaker() -> None:
        for at, what in pending:
            if stop.wait(max(0.0, start + at - time.monotonic())):
                return
            if what == "kill":
                host.kill()
                chaos.done.append(f"host SIGKILL at {time.monotonic() - start:.1f} s")
                host.start()
            else:
                azurite_ref[0].stop()
                chaos.done.append(f"Azurite restarted at {time.monotonic() - start:.1f} s")
                azurite_ref[0] = start_storage()
            _say(chaos.done[-1])

    thread = threading.Thread(target=breaker, daemon=True)
    thread.start()
    answers: Counter[int] = Counter()
    attempts = 0
    interval = SEND_SECONDS / max(1, len(workload.events))
    deadline = start + SEND_SECONDS + 120
    with httpx.Client(timeout=10) as http, ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for index, event in enumerate(workload.events):
            time.sleep(max(0.0, start + index * interval - time.monotonic()))
            if event.kind == "update":
                data = json.loads(event.body)["data"]
                moved = {"department": data["department"]}
                http.patch(f"{admin}/users/{data['userPrincipalName']}", json=moved).raise_for_status()
            futures.append(pool.submit(send_event, http, api, secret, event, deadline=deadline))
        for future in futures:
            status, tries = future.result()
            answers[status] += 1
            attempts += tries
    thread.join()
    stop.set()
    return answers, attempts


def _settle(azurite: Azurite, *, timeout: float) -> None:
    """Wait until the work queues stay empty (visible, leased and delayed messages alike) for 10 s."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    last_report = 0.0
    while time.monotonic() < deadline:
        depth = sum(queue_depth(azurite.connection_string, name) for name in (HR_EVENTS, WAVE_WORK))
        now = time.monotonic()
        if depth == 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= 10:
                return
        else:
            quiet_since = None
            if now - last_report > 30:
                _say(f"{depth} messages still queued or leased")
                last_report = now
        time.sleep(1)
    _say(f"queues not empty after {timeout:.0f} s; comparing what there is")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_campaign", description=__doc__)
    parser.add_argument("--events", type=int, default=500, help="HR deliveries per run (default 500)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--lease",
        type=float,
        default=LEASE_SECONDS,
        help="seconds a killed worker's message stays hidden (default: claim expiry + 30 s; Azure: ~10 min)",
    )
    parser.add_argument("--keep", metavar="DIR", help="copy each run's host and Azurite logs here")
    parser.add_argument(
        "--settle-timeout", type=float, default=900.0, help="seconds to wait for quiet queues"
    )
    args = parser.parse_args(argv)
    if args.events < 10:
        parser.error("--events: at least 10")
    chaos = Chaos.from_seed(args.seed)
    print(f"fault campaign: {args.events} HR deliveries + wave ticks every 5 s, seed {args.seed}", flush=True)
    print(
        f"  chaos run: {chaos.fault_rate:.0%} Graph 429/503, host SIGKILL at {list(chaos.kills)} s, "
        f"Azurite restart at {chaos.storage_restart} s (lease {args.lease:.0f} s)",
        flush=True,
    )
    clean = run_once(
        events=args.events,
        seed=args.seed,
        chaos=Chaos(),
        label="clean",
        settle_timeout=args.settle_timeout,
        lease=args.lease,
        keep=Path(args.keep) if args.keep else None,
    )
    _say(f"clean run done in {clean.seconds:.0f} s")
    faulty = run_once(
        events=args.events,
        seed=args.seed,
        chaos=chaos,
        label="faulty",
        settle_timeout=args.settle_timeout,
        lease=args.lease,
        keep=Path(args.keep) if args.keep else None,
    )
    _say(f"faulty run done in {faulty.seconds:.0f} s")
    figures = compare(clean.end, faulty.end)
    figures.update(
        events=args.events,
        seed=args.seed,
        graph_faults_injected=faulty.faults_injected,
        chaos=faulty.chaos,
        clean_seconds=round(clean.seconds, 1),
        faulty_seconds=round(faulty.seconds, 1),
        sender_attempts_faulty=faulty.sender_attempts,
        answers_faulty={str(k): v for k, v in sorted(faulty.answers.items())},
    )
    _report(figures)
    _write(figures)
    return 0 if figures["lost"] == figures["duplicated"] == figures["poisoned"] == 0 else 1


def _report(figures: dict[str, Any]) -> None:
    print("\nfault campaign (goal 0 / 0 / 0):")
    print(f"  lost effects       {figures['lost']}   {figures['lost_detail']}")
    print(f"  duplicated effects {figures['duplicated']}   {figures['duplicated_detail']}")
    print(f"  poisoned messages  {figures['poisoned']}   {figures['poison_detail']}")
    print(f"  Graph faults injected {figures['graph_faults_injected']}; {'; '.join(figures['chaos'])}")
    print(
        f"  hires onboarded {figures['hires_mailed_faulty']}/{figures['hires_mailed_clean']} (faulty/clean); "
        f"TAPs replaced before delivery {figures['taps_replaced_unsent']}"
    )


def _write(figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    try:
        current = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        current = {}
    current.setdefault("figures", {})["fault_campaign"] = figures
    current["fault_campaign_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.write_text(json.dumps(current, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
