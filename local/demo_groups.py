"""Demo step: someone adds a break-glass account to the pilot wave group; WaveGuard takes it out again.

Runs on the live local stack (`make run`) after the wave promotion step, when the pilot wave has its
group. It syncs the Graph subscriptions (`waveguard subscriptions sync`: the emulator validates the
app's notification URL), makes the change through the emulator's Graph API as any admin would, and
waits for the emulator's notification to come through the app's ingress, the ``group-changes``
queue and the worker: it prints the time from the change to the revert, and the alert raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Final

import httpx

from cli.main import main as waveguard
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.alerting.router import ACTIVE_NAMESPACE
from shared.alerting.routing import matching_routes
from shared.config import load_plan_for, load_settings
from shared.state import build_state

__all__ = ["show_group_change"]

REVERT_WAIT_SECONDS: Final = 30.0


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def _group_id(graph: httpx.Client, name: str) -> str | None:
    found = graph.get("/groups", params={"$filter": f"displayName eq '{name}'"}).json()["value"]
    return str(found[0]["id"]) if found else None


def _members(graph: httpx.Client, group_id: str) -> set[str]:
    return {m["id"] for m in graph.get(f"/groups/{group_id}/members", params={"$top": "999"}).json()["value"]}


def show_group_change(environ: Mapping[str, str]) -> None:
    """Subscribe, add a break-glass account to the pilot wave group, time the revert."""
    settings = load_settings(environ)
    plan = load_plan_for(settings)
    _title("Group changes: a break-glass account added to the pilot wave group")
    print("  waveguard subscriptions sync:", flush=True)
    waveguard(["subscriptions", "sync"], environ)
    pilot = plan.waves[0]
    account = plan.break_glass.accounts[0]
    with httpx.Client(
        base_url=settings.graph_base_url.rstrip("/"), timeout=10, headers=ADMIN_HEADERS
    ) as graph:
        group_id = _group_id(graph, str(pilot.group.display_name))
        if group_id is None:
            print(f"  the {pilot.name} wave has no group yet; skipped")
            return
        key = account.id or account.user_principal_name
        user = graph.get(f"/users/{key}", params={"$select": "id,userPrincipalName"}).json()
        upn, target = user["userPrincipalName"], pilot.group.display_name
        print(f"  someone adds break-glass account {upn} to {target} through Graph ...", flush=True)
        ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"}
        changed = time.monotonic()
        graph.post(f"/groups/{group_id}/members/$ref", json=ref).raise_for_status()
        deadline = changed + REVERT_WAIT_SECONDS
        while user["id"] in _members(graph, group_id):
            if time.monotonic() > deadline:
                print(f"  NOT reverted within {REVERT_WAIT_SECONDS:.0f} s: check the host log")
                return
            time.sleep(0.05)
        elapsed = time.monotonic() - changed
    print(f"  removed again by WaveGuard {elapsed:.2f} s after the change (notification → queue → worker)")
    stores = build_state(settings)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = asyncio.run(stores.aio.kv.values(ACTIVE_NAMESPACE))
        for record in records:
            labels = record.get("labels", {}) if isinstance(record, dict) else {}
            if labels.get("alertname") == "BreakGlassTargeted" and labels.get("group") == group_id:
                print(f"  alert routed: {record.get('severity')} {record.get('summary')}")
                routes = matching_routes(plan.alerting.route, labels)
                print(f"  receivers: {', '.join(m.receiver for m in routes)} (after the group wait)")
                return
        time.sleep(0.2)
    print("  (the router has not taken in the BreakGlassTargeted alert yet)")
