"""The subscription manager against the Graph emulator: one subscription per watched group, created
(Graph validates the URL first), kept, renewed, created again when Graph lost it, dropped when the
group is no longer watched; a refusal fails only its group; no URL, no subscription."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cli.main import main as waveguard
from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.errors import ConfigError, PermanentError, RetryableError
from shared.graph import build_graph_client
from shared.group_changes.subscriptions import (
    NAMESPACE,
    SYNC_LOCK_KEY,
    SubscriptionDeps,
    lifecycle_url,
    sync_group,
    sync_subscriptions,
)
from shared.group_changes.timers import run_subscription_sync
from shared.group_changes.watched import watched_groups
from shared.names import ALERTS
from shared.queues import MemoryQueues
from shared.state import StateStores, build_memory_state
from tests.receiver import Receiver, receiver

pytestmark = pytest.mark.functional


@pytest.fixture
def endpoint() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


@pytest.fixture
def stores() -> StateStores:
    return build_memory_state()


def _deps(app_environ: dict[str, str], stores: StateStores, url: str | None) -> SubscriptionDeps:
    settings = load_settings({**app_environ, "WAVEGUARD_NOTIFICATION_URL": url or ""})
    return SubscriptionDeps(load_plan_for(settings), build_graph_client(settings), stores.aio)


def _call(method: str, url: str, body: object = None) -> dict[str, Any]:
    answer = httpx.request(method, url, json=body, headers=ADMIN_HEADERS)
    answer.raise_for_status()
    return answer.json() if answer.content else {}


def _graph_subscription_ids(emulator: EmulatorHandle) -> list[str]:
    return [s["id"] for s in httpx.get(f"{emulator.admin_url}/subscriptions").json()["value"]]


def _graph_subscriptions(emulator: EmulatorHandle) -> dict[str, str]:
    return {s["groupId"]: s["id"] for s in httpx.get(f"{emulator.admin_url}/subscriptions").json()["value"]}


async def test_sync_creates_keeps_renews_recreates_and_drops(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    deps = _deps(app_environ, stores, endpoint.url)
    exclusion = demo.break_glass_group_id
    # first sync: the exclusion group (no wave has a group yet)
    [first] = await sync_subscriptions(deps, correlation_id="c1")
    assert (first.group_id, first.action, first.roles) == (exclusion, "created", ("exclusion",))
    assert _graph_subscriptions(emulator_server) == {exclusion: first.subscription_id}
    assert len(endpoint.validations) == 2  # notification and lifecycle URLs, validated by Graph
    # a second sync changes nothing
    [again] = await sync_subscriptions(deps, correlation_id="c2")
    assert (again.action, again.subscription_id) == ("kept", first.subscription_id)
    # less than 7 days left: renewed in place
    record = stores.kv.get(NAMESPACE, exclusion)
    assert record is not None
    soon = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    stores.kv.put(NAMESPACE, exclusion, {**record.value, "expiresAt": soon})
    [renewed] = await sync_subscriptions(deps, correlation_id="c3")
    assert (renewed.action, renewed.subscription_id) == ("renewed", first.subscription_id)
    assert renewed.expires_at is not None
    assert renewed.expires_at > soon
    # Graph lost it: created again
    _call("DELETE", f"{emulator_server.base_url}/subscriptions/{first.subscription_id}")
    [recreated] = await sync_subscriptions(deps, correlation_id="c4")
    assert recreated.action == "recreated"
    assert _graph_subscriptions(emulator_server) == {exclusion: recreated.subscription_id}
    # the pilot wave gets its group: its group and its selector group are watched too
    pilot_id = _call(
        "POST", f"{emulator_server.admin_url}/groups", {"displayName": "WaveGuard - Wave 1 Pilot"}
    )["id"]
    results = {s.group_id: s for s in await sync_subscriptions(deps, correlation_id="c5")}
    assert results[pilot_id].roles == ("wave:pilot",)
    assert results[demo.it_pilot_group_id].roles == ("selector:pilot",)
    # the pilot group is deleted: it is no longer watched and its subscription is dropped
    _call("DELETE", f"{emulator_server.base_url}/groups/{pilot_id}")
    dropped = {s.group_id: s for s in await sync_subscriptions(deps, correlation_id="c6")}
    assert (dropped[pilot_id].action, dropped[pilot_id].watched) == ("deleted", False)
    assert pilot_id not in _graph_subscriptions(emulator_server)
    actions = sorted(e.action for e in stores.audit.list())
    assert "subscription.renewed" in actions
    assert "subscription.deleted" in actions


async def test_a_refused_validation_fails_that_group_and_is_explained(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    endpoint.echo = "wrong"
    deps = _deps(app_environ, stores, endpoint.url)
    [status] = await sync_subscriptions(deps, correlation_id="c1")
    assert status.action == "failed"
    assert status.detail is not None
    assert "validation" in status.detail.lower()
    assert _graph_subscriptions(emulator_server) == {}


async def test_without_a_notification_url_nothing_is_subscribed(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores
) -> None:
    deps = _deps(app_environ, stores, None)
    [status] = await sync_subscriptions(deps, correlation_id="c1")
    assert status.action == "unconfigured"
    assert _graph_subscriptions(emulator_server) == {}


def test_the_cli_lists_and_syncs_with_the_key_never_shown(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    endpoint: Receiver,
    capsys: pytest.CaptureFixture[str],
    storage_connection_string: str,
) -> None:
    env = {**app_environ, "WAVEGUARD_NOTIFICATION_URL": endpoint.url}
    demo = emulator_server.demo
    assert demo is not None
    # (the storage is shared by the session: records other tests left are synced away too)
    assert waveguard(["subscriptions", "sync"], env) == 0
    assert f"{demo.break_glass_group_id}  WaveGuard - Break glass exclusion" in capsys.readouterr().out
    assert waveguard(["subscriptions", "list", "--json"], env) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["notificationUrl"].endswith("/api/graph/notifications?code=***")
    [row] = [g for g in listed["groups"] if g["watched"]]
    assert row["groupId"] == demo.break_glass_group_id
    assert row["subscriptionId"] in _graph_subscriptions(emulator_server).values()
    endpoint.echo = "wrong"
    httpx.delete(f"{emulator_server.base_url}/subscriptions/{row['subscriptionId']}", headers=ADMIN_HEADERS)
    assert waveguard(["subscriptions", "sync"], env) == 1
    out = capsys.readouterr()
    assert "[failed]" in out.out
    assert "k%2By" not in out.out + out.err


def test_a_bad_notification_url_is_refused_naming_the_field(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        **app_environ,
        "WAVEGUARD_NOTIFICATION_URL": "http://waveguard.example.com/api/graph/notifications",
    }
    with pytest.raises(ConfigError, match="expected an https URL"):
        load_plan_for(load_settings(env))
    assert waveguard(["subscriptions", "list"], env) == 2
    assert "subscriptions" in capsys.readouterr().err


def test_the_lifecycle_url_sits_next_to_the_notification_url() -> None:
    assert lifecycle_url("https://app.example.net/api/graph/notifications?code=a%2Bb") == (
        "https://app.example.net/api/graph/lifecycle?code=a%2Bb"
    )
    assert lifecycle_url("https://hooks.example.net/in") == "https://hooks.example.net/in"


async def test_an_extra_subscription_calling_waveguard_is_deleted_and_others_are_left(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    deps = _deps(app_environ, stores, endpoint.url)
    [first] = await sync_subscriptions(deps, correlation_id="c1")
    # a sync that died between creating and recording left a second one on the exclusion group;
    # another application's subscription (another URL) on the same group must stay
    stray = _subscribe(emulator_server, demo.break_glass_group_id, endpoint.url)
    foreign = _subscribe(
        emulator_server, demo.break_glass_group_id, endpoint.url.replace("/api/graph/", "/other/")
    )
    results = await sync_subscriptions(deps, correlation_id="c2")
    assert [(r.subscription_id, r.action) for r in results] == [
        (first.subscription_id, "kept"),
        (stray, "deleted"),
    ]
    assert set(_graph_subscription_ids(emulator_server)) == {first.subscription_id, foreign}


async def test_one_sync_at_a_time(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    deps = _deps(app_environ, stores, endpoint.url)
    stores.idempotency.claim(SYNC_LOCK_KEY, ttl=timedelta(minutes=5), in_progress_expiry=timedelta(minutes=5))
    with pytest.raises(RetryableError, match="another subscription sync"):
        await sync_subscriptions(deps, correlation_id="c1")
    assert _graph_subscriptions(emulator_server) == {}
    # a timer tick waits for the other writer; still held when its wait runs out, the tick is
    # skipped with a warning: no failure, no page, no subscription
    queues = MemoryQueues()
    assert await run_subscription_sync(deps, queues, correlation_id="t1", busy_wait=0.3) == []
    assert queues.on(ALERTS) == []
    assert _graph_subscriptions(emulator_server) == {}

    # released while the tick waits: the tick syncs
    async def release_soon() -> None:
        await asyncio.sleep(0.5)
        stores.idempotency.release(SYNC_LOCK_KEY)

    releasing = asyncio.create_task(release_soon())
    results = await run_subscription_sync(deps, queues, correlation_id="t2", busy_wait=10.0)
    await releasing
    assert results
    assert all(r.action == "created" for r in results), results
    assert len(_graph_subscriptions(emulator_server)) == len(results)


async def test_the_timer_pages_when_a_group_cannot_be_subscribed(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    endpoint.echo = "wrong"
    queues = MemoryQueues()
    await run_subscription_sync(_deps(app_environ, stores, endpoint.url), queues, correlation_id="t1")
    [alert] = queues.on(ALERTS)
    assert alert.payload["labels"]["alertname"] == "SubscriptionSyncFailed"
    assert "validation" in alert.payload["summary"].lower()
    # and without a notification URL the timer makes no Graph call at all
    emulator_server.emulator.requests.clear()
    assert await run_subscription_sync(_deps(app_environ, stores, None), queues, correlation_id="t2") == []
    assert len(emulator_server.emulator.requests) == 0


def _subscribe(emulator: EmulatorHandle, group_id: str, url: str) -> str:
    body = {
        "changeType": "updated",
        "notificationUrl": url,
        "resource": f"groups/{group_id}",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "clientState": "x",
    }
    return str(_call("POST", f"{emulator.base_url}/subscriptions", body)["id"])


async def test_a_new_client_state_or_url_replaces_the_subscriptions(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    [first] = await sync_subscriptions(_deps(app_environ, stores, endpoint.url), correlation_id="c1")
    rotated = _deps({**app_environ, "WAVEGUARD_GRAPH_CLIENT_STATE": "rotated-secret"}, stores, endpoint.url)
    [second] = await sync_subscriptions(rotated, correlation_id="c2")
    assert second.action == "recreated"
    assert second.subscription_id != first.subscription_id
    live = _call("GET", f"{emulator_server.admin_url}/subscriptions")["value"]
    assert [(s["id"], s["clientState"]) for s in live] == [(second.subscription_id, "rotated-secret")]
    [third] = await sync_subscriptions(rotated, correlation_id="c3")
    assert third.action == "kept"


async def test_a_lifecycle_recreation_waits_for_a_running_sync(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    deps = _deps(app_environ, stores, endpoint.url)
    stores.idempotency.claim(SYNC_LOCK_KEY, ttl=timedelta(minutes=5), in_progress_expiry=timedelta(minutes=5))
    with pytest.raises(RetryableError):
        await sync_group(deps, demo.break_glass_group_id, correlation_id="l1")


async def test_an_ambiguous_selector_name_is_reported_and_the_rest_still_watched(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    _call("POST", f"{emulator_server.admin_url}/groups", {"displayName": "WaveGuard - Wave 1 Pilot"})
    _call("POST", f"{emulator_server.admin_url}/groups", {"displayName": "IT pilot"})  # a second one
    deps = _deps(app_environ, stores, endpoint.url)
    watched = await watched_groups(deps.graph, deps.plan, stores.aio.kv)
    assert any("several groups are named 'IT pilot'" in m for m in watched.missing)
    roles = {g.roles for g in watched.groups}
    assert ("wave:pilot",) in roles
    assert demo.it_pilot_group_id not in {g.group_id for g in watched.groups}


async def test_the_timer_pages_when_the_whole_sync_fails(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, stores: StateStores, endpoint: Receiver
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    _call("DELETE", f"{emulator_server.base_url}/groups/{demo.break_glass_group_id}")
    queues = MemoryQueues()
    with pytest.raises(PermanentError):
        await run_subscription_sync(_deps(app_environ, stores, endpoint.url), queues, correlation_id="t1")
    [alert] = queues.on(ALERTS)
    assert alert.payload["labels"]["alertname"] == "SubscriptionSyncFailed"
    assert alert.payload["severity"] == "critical"


def test_the_cli_waits_for_a_sync_that_is_running_and_fails_plainly_when_told_not_to(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    endpoint: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import threading

    from shared.group_changes.subscriptions import SYNC_LOCK_KEY
    from shared.state import build_state

    env = {**app_environ, "WAVEGUARD_NOTIFICATION_URL": endpoint.url}
    state = build_state(load_settings(env))
    # GIVEN another sync (the timer's, say) holds the tenant's lock
    held = state.idempotency.claim(
        SYNC_LOCK_KEY, ttl=timedelta(minutes=5), in_progress_expiry=timedelta(minutes=5)
    )
    assert held.acquired
    try:
        # WHEN an operator syncs without waiting: a plain failure naming why
        assert waveguard(["subscriptions", "sync", "--wait", "0"], env) == 1
        assert "another subscription sync is running" in capsys.readouterr().err
        # AND with the default wait, while the other sync finishes a moment later
        releaser = threading.Timer(1.5, state.idempotency.release, args=(SYNC_LOCK_KEY,))
        releaser.start()
        assert waveguard(["subscriptions", "sync", "--json"], env) == 0
        out = capsys.readouterr()
        assert "waiting for it" in out.err
        assert json.loads(out.out)["failed"] == 0
    finally:
        state.idempotency.release(SYNC_LOCK_KEY)
    with pytest.raises(SystemExit) as usage:
        waveguard(["subscriptions", "sync", "--wait", "soon"], env)
    assert usage.value.code == 2
    assert "argument --wait: expected seconds, got 'soon'" in capsys.readouterr().err
