"""Group changes end to end: the real app on the mini-host keeps Graph subscriptions on the watched
groups (the emulator validates the notification URL against the app), and a change made through
Graph's API comes back as a notification, goes through the queue, and is reacted to exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.main import main as waveguard
from local.graph_emulator import EmulatorHandle
from local.ports import free_port
from shared.names import ALERTS, GROUP_CHANGES
from tests.app_host import app_host
from tests.queue_helpers import fresh_queue
from tests.routed_alerts import routed_alerts
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

KEY = "group-changes-e2e-key"
PILOT_GROUP = "WaveGuard - Wave 1 Pilot"


def _subscriptions(emulator: EmulatorHandle) -> dict[str, dict[str, Any]]:
    value = httpx.get(f"{emulator.admin_url}/subscriptions").json()["value"]
    return {item["groupId"]: item for item in value}


def _members(emulator: EmulatorHandle, group_id: str) -> set[str]:
    page = httpx.get(f"{emulator.base_url}/groups/{group_id}/members?$select=id&$top=999").json()
    return {m["id"] for m in page["value"]}


@pytest.fixture
def stack(
    app_environ: dict[str, str], storage_connection_string: str, emulator_server: EmulatorHandle
) -> Iterator[dict[str, str]]:
    for name in (GROUP_CHANGES, ALERTS, f"{GROUP_CHANGES}-poison"):
        fresh_queue(storage_connection_string, name)
    port = free_port()
    environ = {
        **app_environ,
        "WAVEGUARD_NOTIFICATION_URL": f"http://127.0.0.1:{port}/api/graph/notifications?code={KEY}",
    }
    host = app_host(environ, storage_connection_string, http_port=port, function_keys={"default": KEY})
    with host:
        yield environ


def test_a_break_glass_account_added_through_graph_is_removed_once_and_subscriptions_heal(
    stack: dict[str, str], emulator_server: EmulatorHandle, storage_connection_string: str
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    # GIVEN the app started: its subscription timer subscribed to the exclusion group at once
    wait_for(
        "the exclusion group's subscription",
        lambda: demo.break_glass_group_id in _subscriptions(emulator_server),
    )
    # AND the pilot wave has its group now; an operator syncs the subscriptions
    pilot = httpx.post(f"{emulator_server.admin_url}/groups", json={"displayName": PILOT_GROUP}).json()["id"]
    assert waveguard(["subscriptions", "sync"], stack) == 0
    subs = _subscriptions(emulator_server)
    assert {pilot, demo.it_pilot_group_id, demo.break_glass_group_id} <= set(subs)
    assert subs[pilot]["changeType"] == "updated,deleted"
    assert subs[pilot]["lifecycleNotificationUrl"].split("?")[0].endswith("/api/graph/lifecycle")
    # the second sync changes nothing
    assert waveguard(["subscriptions", "sync", "--json"], stack) == 0
    assert _subscriptions(emulator_server)[pilot]["id"] == subs[pilot]["id"]
    # WHEN someone adds a break-glass account to the pilot wave group through Graph
    account = demo.break_glass_ids[0]
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{account}"}
    changed = time.monotonic()
    httpx.post(f"{emulator_server.base_url}/groups/{pilot}/members/$ref", json=ref).raise_for_status()
    # THEN the notification reaches the app and the account is removed again within seconds
    wait_for(
        "the break-glass account removed", lambda: account not in _members(emulator_server, pilot), timeout=30
    )
    reverted = time.monotonic() - changed
    # AND it was alerted, and reverted exactly once, even after WaveGuard's own removal is notified
    wait_for(
        "the BreakGlassTargeted alert",
        lambda: [
            a for a in routed_alerts(storage_connection_string) if a.payload["labels"].get("group") == pilot
        ],
        timeout=10,
    )
    [alert] = [
        a for a in routed_alerts(storage_connection_string) if a.payload["labels"].get("group") == pilot
    ]
    assert (alert.payload["labels"]["alertname"], alert.payload["severity"]) == (
        "BreakGlassTargeted",
        "critical",
    )
    time.sleep(2.5)  # the notification of WaveGuard's own removal is processed meanwhile
    reverts = emulator_server.emulator.requests.entries(method="DELETE", path=f"/groups/{pilot}/members/")
    assert len(reverts) == 1
    assert reverted < 30
    # WHEN Graph removes the pilot subscription (a lifecycle event)
    old = _subscriptions(emulator_server)[pilot]["id"]
    lifecycle = f"{emulator_server.admin_url}/subscriptions/{old}/lifecycle"
    assert httpx.post(lifecycle, json={"event": "subscriptionRemoved"}).status_code == 202
    # THEN the worker creates it again
    wait_for(
        "the pilot subscription recreated",
        lambda: (
            pilot in _subscriptions(emulator_server) and _subscriptions(emulator_server)[pilot]["id"] != old
        ),
        timeout=30,
    )
    # AND `subscriptions list` shows each watched group with its subscription and last notification
    assert waveguard(["subscriptions", "list"], stack) == 0
    # AND the critical alert holds the pilot wave until an operator resolves it
    key = f"group-changes:BreakGlassTargeted:{pilot}"
    assert waveguard(["waves", "resolve-alert", "pilot", key, "--reason", "checked: test change"], stack) == 0
