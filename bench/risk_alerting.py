"""Risk signal → on-call: how fast a detection reaches a receiver, and what a storm does to receivers.

The real app runs in the mini-host (its risk timer ticking every second, ``risk.pollEverySeconds``
10 s) against Azurite, the Graph emulator (Identity Protection's 1 request/s budget on) and the
local receiver sink, which enforces PagerDuty's, Teams' and the webhook's rate limits and records
any violation. The plan is the example plan with the bench's routes: PagerDuty for critical and
high, Teams for break-glass alerts (as in the example plan), and a webhook (which carries every
alert of a notification, so the bench can see each one arrive) for all.

- **Latency**: ``DETECTIONS`` high-risk detections for as many users, injected at a steady rate
  over ``SPREAD_S``; for each, from the moment Graph lists it to the first webhook delivery (2xx)
  that carries its user's alert firing. ``p99_over_goal`` against the goal: poll interval + 2 s.
  Grouped per user with group wait 0 s: the plan's own grouping waits would add to it.
- **Storm**: ``STORM`` detections within one minute over every user of the tenant, grouped per
  user (so each receiver faces hundreds of groups). ``violations`` (the sink's count of deliveries
  beyond a receiver's limit) must be 0; ``groups_told_share`` (groups whose alerts reached the
  webhook, alone or in a digest) must be 1.00; ``digests`` counts storm digests sent.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from cli.main import read_local_settings
from local.azurite import Azurite
from local.graph_emulator import start_emulator
from local.minihost import create_host
from local.ports import free_port
from local.receiver_sink import start_sink
from local.receiver_sink.limits import RateRule

ROOT: Final = Path(__file__).resolve().parent.parent
DETECTIONS: Final = 500
SPREAD_S: Final = 60.0
STORM: Final = 5000
POLL_S: Final = 10
GOAL_S: Final = POLL_S + 2.0
WEBHOOK_LIMIT: Final = (2, 1.0)  # the bench webhook: 2 a second, so a storm must fold into digests
KEY: Final = "bench-risk-key"


@dataclass
class Arrivals:
    """Webhook deliveries as they arrive: when each user's alert was first told firing."""

    first_seen: dict[str, float] = field(default_factory=dict)
    groups_told: set[str] = field(default_factory=set)
    digests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("kind") != "webhook" or int(event.get("status", 500)) >= 300:
            return
        body = event.get("body") or {}
        now = time.monotonic()
        with self.lock:
            if body.get("digestOf"):
                self.digests += 1
            for alert in body.get("alerts", []):
                user = str(alert.get("labels", {}).get("user", ""))
                if alert.get("status") == "firing" and user:
                    self.first_seen.setdefault(user, now)
                    self.groups_told.add(user)
            for group in body.get("groups", []):  # a digest names every group it folds
                user = str(group.get("groupLabels", {}).get("user", ""))
                if user and group.get("firing"):
                    self.groups_told.add(user)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _plan_file(directory: Path, *, group_by: list[str], webhook_limit: tuple[int, float]) -> Path:
    plan = yaml.safe_load((ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
    plan["risk"].update(
        {"pollEverySeconds": POLL_S, "triageUsersPerPoll": 50, "responses": {"revokeSessions": "off"}}
    )
    plan["alerting"] = {
        "route": {
            "receiver": "bench-webhook",
            "groupBy": group_by,
            "groupWaitSeconds": 0,
            "groupIntervalSeconds": 1,
            "repeatIntervalSeconds": 14400,
            "routes": [
                {"receiver": "pagerduty-oncall", "matchers": ["severity=~critical|high"], "continue": True},
                {"receiver": "teams-identity", "matchers": ["alertname=~BreakGlass.*"], "continue": True},
                {"receiver": "bench-webhook", "matchers": ["alertname=~.+"]},
            ],
        },
        "receivers": [
            {
                "name": "pagerduty-oncall",
                "pagerduty": {"routingKey": "${PAGERDUTY_ROUTING_KEY}", "url": "${PAGERDUTY_URL}"},
            },
            {"name": "teams-identity", "teams": {"webhookUrl": "${TEAMS_WEBHOOK_URL}"}},
            {
                "name": "bench-webhook",
                "webhook": {"url": "${BENCH_WEBHOOK_URL}"},
                "rateLimit": {"count": webhook_limit[0], "perSeconds": webhook_limit[1]},
            },
        ],
    }
    path = directory / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), "utf-8")
    return path


@contextmanager
def _stack(
    azurite: Azurite, group_by: list[str], arrivals: Arrivals, webhook_limit: tuple[int, float]
) -> Iterator[tuple[Any, Any]]:
    sink = start_sink(
        port=0,
        limits={"webhook": RateRule(*webhook_limit)},
        max_events=200_000,
        on_event=arrivals,
    )
    emulator = start_emulator(port=0, seed="demo")
    local = read_local_settings(ROOT / "local" / "local.settings.json")
    with tempfile.TemporaryDirectory() as tmp:
        environ = {
            **{k: v for k, v in local.items() if k != "AzureWebJobsStorage"},
            "GRAPH_BASE_URL": emulator.base_url,
            "WAVEGUARD_CONFIG": str(_plan_file(Path(tmp), group_by=group_by, webhook_limit=webhook_limit)),
            "WAVEGUARD_RISK_SCHEDULE": "* * * * * *",
            "WAVEGUARD_WAVE_SCHEDULE": "0 0 0 1 1 *",
            "WAVEGUARD_SUBSCRIPTION_SCHEDULE": "0 0 0 1 1 *",
            "PAGERDUTY_URL": sink.pagerduty_url,
            "TEAMS_WEBHOOK_URL": sink.teams_url,
            "BENCH_WEBHOOK_URL": f"{sink.webhook_url}/bench",
        }
        host = create_host(
            "function_app:app",
            app_dir=ROOT,
            http_port=free_port(),
            environ=environ,
            storage_connection_string=azurite.connection_string,
            function_keys={"default": KEY},
            grace_period=2.0,
        )
        try:
            with host:
                yield emulator, sink
        finally:
            emulator.stop()
            sink.stop()


def _users(emulator: Any, count: int) -> list[dict[str, str]]:
    """``count`` ordinary users (no break-glass), adding bench users to the tenant when it has fewer."""
    with httpx.Client(timeout=30) as http:
        found: list[dict[str, str]] = []
        url: str | None = f"{emulator.base_url}/users?$select=id,userPrincipalName&$top=999"
        while url:
            page = http.get(url).json()
            found += [u for u in page["value"] if not u["userPrincipalName"].startswith("bg-admin")]
            url = page.get("@odata.nextLink")
        missing = count - len(found)
        if missing > 0:
            added = [
                {"userPrincipalName": f"risk-bench-{n}@contoso.com", "displayName": f"Risk Bench {n}"}
                for n in range(missing)
            ]
            for start in range(0, len(added), 500):
                http.post(f"{emulator.admin_url}/users", json=added[start : start + 500]).raise_for_status()
            return _users(emulator, count)
    return found[:count]


def latency(azurite: Azurite) -> dict[str, float]:
    arrivals = Arrivals()
    with _stack(azurite, ["alertname", "user"], arrivals, (1000, 1.0)) as (emulator, sink):
        users = _users(emulator, DETECTIONS)
        visible: dict[str, float] = {}
        interval = SPREAD_S / DETECTIONS
        started = time.monotonic()
        with httpx.Client(timeout=30) as http:
            for n, user in enumerate(users):
                due = started + n * interval
                time.sleep(max(0.0, due - time.monotonic()))
                http.post(
                    f"{emulator.admin_url}/risk-detections",
                    json={"userId": user["id"], "riskLevel": "high", "riskEventType": "anonymizedIPAddress"},
                ).raise_for_status()
                visible[user["userPrincipalName"].lower()] = time.monotonic()
        deadline = time.monotonic() + POLL_S * 4
        while time.monotonic() < deadline and len(arrivals.first_seen.keys() & visible.keys()) < len(visible):
            time.sleep(0.2)
        stats = sink.stats()
    waits = [arrivals.first_seen[u] - at for u, at in visible.items() if u in arrivals.first_seen]
    lost = len(visible) - len(waits)
    p99 = _percentile(waits, 0.99) if waits else float("inf")
    return {
        "detections": float(len(visible)),
        "delivered": float(len(waits)),
        "lost": float(lost),
        "p50_s": round(statistics.median(waits), 2) if waits else float("inf"),
        "p99_s": round(p99, 2),
        "goal_s": GOAL_S,
        "p99_over_goal": round(p99 / GOAL_S, 3),
        "violations": float(stats["violationCount"]),
    }


def storm(azurite: Azurite) -> dict[str, float]:
    arrivals = Arrivals()
    with _stack(azurite, ["alertname", "user"], arrivals, WEBHOOK_LIMIT) as (emulator, sink):
        users = _users(emulator, 1000)
        with httpx.Client(timeout=60) as http:
            started = time.monotonic()
            batch = 250
            for start in range(0, STORM, batch):
                detections = [
                    {
                        "userId": users[(start + n) % len(users)]["id"],
                        "riskLevel": "high",
                        "riskEventType": "passwordSpray",
                    }
                    for n in range(batch)
                ]
                http.post(f"{emulator.admin_url}/risk-detections", json=detections).raise_for_status()
                time.sleep(max(0.0, started + (start + batch) * 60.0 / STORM - time.monotonic()))
        expected = {u["userPrincipalName"].lower() for u in users}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(arrivals.groups_told & expected) < len(expected):
            time.sleep(0.5)
        told_at = time.monotonic() - started
        stats = sink.stats()
    kinds = stats.get("kinds", {})
    return {
        "detections": float(STORM),
        "users": float(len(expected)),
        "groups_told_share": round(len(arrivals.groups_told & expected) / len(expected), 3),
        "all_told_after_s": round(told_at, 1),
        "digests": float(arrivals.digests),
        "pagerduty_events": float(sum((kinds.get("pagerduty") or {}).values())),
        "teams_events": float(sum((kinds.get("teams") or {}).values())),
        "webhook_events": float(sum((kinds.get("webhook") or {}).values())),
        "violations": float(stats["violationCount"]),
    }


def meets_targets(latency_figures: dict[str, float], storm_figures: dict[str, float]) -> bool:
    return (
        latency_figures["p99_over_goal"] <= 1.0
        and latency_figures["lost"] == 0
        and storm_figures["violations"] == 0
        and storm_figures["groups_told_share"] == 1.0
        and storm_figures["digests"] > 0
    )


if __name__ == "__main__":
    from local.azurite import start_azurite

    for scenario in (latency, storm):  # each on its own Azurite, as ``make bench`` runs them
        store = start_azurite()
        try:
            print(json.dumps({scenario.__name__: scenario(store)}, indent=2), flush=True)
        finally:
            store.stop()
