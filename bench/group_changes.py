"""Group change → revert: how fast a break-glass account added to a watched group is taken out again.

The real app runs in the mini-host with the repository's host.json (queue ``maxPollingInterval``
2 s), Azurite and the Graph emulator; the app keeps Graph subscriptions on the watched groups (the
emulator validates its notification URL). ``CHANGES`` times, "someone" adds a break-glass account to
one of the four wave groups through Graph; the emulator notifies the app, whose ingress queues the
notification and whose worker reads the group's delta and removes the account. Up to one change per
(group, account) pair is in flight at a time, so several overlap as they would in a busy tenant.

Figures:
- ``p50_s`` / ``p99_s`` / ``max_s``: from the change's answer to the revert seen in the tenant;
  ``p99_over_limit`` against the 5 s goal;
- ``graph_calls_per_change``: every Graph call the app made during the run, per change;
- ``reverts_per_change``: removals WaveGuard made per change (exactly 1.00: no change missed, none
  reacted to twice).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Final

import httpx

from cli.main import main as waveguard
from cli.main import read_local_settings
from local.azurite import Azurite
from local.graph_emulator import start_emulator
from local.minihost import create_host
from local.ports import free_port

ROOT: Final = Path(__file__).resolve().parent.parent
CHANGES: Final = 200
LIMIT_S: Final = 5.0
REVERT_TIMEOUT_S: Final = 30.0
KEY: Final = "bench-group-changes-key"
WAVE_GROUPS: Final = (
    "WaveGuard - Wave 1 Pilot",
    "WaveGuard - Wave 2 Finance and HR",
    "WaveGuard - Wave 3 Sales and Marketing",
    "WaveGuard - Wave 4 Everyone",
)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(azurite: Azurite) -> dict[str, float]:
    emulator = start_emulator(port=0, seed="demo")
    demo = emulator.demo
    assert demo is not None
    port = free_port()
    local = read_local_settings(ROOT / "local" / "local.settings.json")
    environ = {
        **{k: v for k, v in local.items() if k != "AzureWebJobsStorage"},
        "GRAPH_BASE_URL": emulator.base_url,
        "WAVEGUARD_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications?code={KEY}",
    }
    groups = []
    for name in WAVE_GROUPS:
        answer = httpx.post(f"{emulator.admin_url}/groups", json={"displayName": name})
        groups.append(str(answer.json()["id"]))
    host = create_host(
        "function_app:app",
        app_dir=ROOT,
        http_port=port,
        environ=environ,
        storage_connection_string=azurite.connection_string,
        function_keys={"default": KEY},
        grace_period=2.0,
    )
    try:
        with host:
            cli_env = {**environ, "AzureWebJobsStorage": azurite.connection_string}
            if waveguard(["subscriptions", "sync", "--json"], cli_env) != 0:
                raise RuntimeError("waveguard subscriptions sync failed")
            _settle(emulator)
            emulator.emulator.requests.clear()
            latencies = _changes(emulator, groups, list(demo.break_glass_ids))
            _settle(emulator)
            entries = emulator.emulator.requests.entries()
    finally:
        emulator.stop()
    ours = [e for e in entries if not e.get("path", "").startswith("/_emulator")]
    someone = CHANGES  # the bench's own POSTs
    reverts = sum(1 for e in ours if e["method"] == "DELETE" and e["path"].endswith("/$ref"))
    return {
        "changes": float(CHANGES),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
        "p99_over_limit": round(_percentile(latencies, 0.99) / LIMIT_S, 3),
        "graph_calls_per_change": round((len(ours) - someone) / CHANGES, 2),
        "reverts_per_change": round(reverts / CHANGES, 3),
    }


def _settle(emulator: Any, quiet_s: float = 3.0, timeout_s: float = 60.0) -> None:
    """Wait until no Graph call has come in for ``quiet_s`` (the app finished reacting)."""
    deadline = time.monotonic() + timeout_s
    last, since = len(emulator.emulator.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = len(emulator.emulator.requests)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s and emulator.emulator.outbound.pending() == 0:
            return


def _changes(emulator: Any, groups: list[str], accounts: list[str]) -> list[float]:
    pairs = [(g, a) for g in groups for a in accounts]
    in_flight: dict[tuple[str, str], float] = {}
    latencies: list[float] = []
    started = 0
    with httpx.Client(base_url=emulator.base_url, timeout=10) as graph:
        while len(latencies) < CHANGES:
            for pair in pairs:
                if pair not in in_flight and started < CHANGES:
                    group, account = pair
                    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{account}"}
                    graph.post(f"/groups/{group}/members/$ref", json=ref).raise_for_status()
                    in_flight[pair] = time.monotonic()
                    started += 1
            time.sleep(0.01)
            with emulator.emulator.lock:
                members = {g: set(emulator.store.members.get(g, {})) for g in groups}
            for pair, at in list(in_flight.items()):
                if pair[1] not in members[pair[0]]:
                    latencies.append(time.monotonic() - at)
                    del in_flight[pair]
                elif time.monotonic() - at > REVERT_TIMEOUT_S:
                    raise RuntimeError(f"a change was not reverted within {REVERT_TIMEOUT_S:.0f} s: {pair}")
    return latencies


def meets_targets(figures: dict[str, float]) -> bool:
    return figures["p99_over_limit"] <= 1.0 and figures["reverts_per_change"] == 1.0


if __name__ == "__main__":
    from local.azurite import start_azurite

    store = start_azurite()
    try:
        print(json.dumps(run(store), indent=2))
    finally:
        store.stop()
