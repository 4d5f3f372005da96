"""The group-changes worker against the Graph emulator: what a change in each kind of watched group
makes WaveGuard do, whoever made the change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.alerting import list_open_alerts
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.graph import build_graph_client
from shared.group_changes.notifications import CHANGE_TYPE
from shared.group_changes.worker import (
    ACTOR,
    DELTA_NAMESPACE,
    RESYNC_TYPE,
    GroupChangeDeps,
    group_change_routes,
    react_to_group,
    settle,
)
from shared.names import ALERTS
from shared.pipeline import PipelineDeps, handle_envelope
from shared.queues import MemoryQueues
from shared.rollout.membership import NAMESPACE as SYNC_NAMESPACE
from shared.rollout.wave_state import WaveState, replace_wave_state
from shared.state import StateStores, build_memory_state

pytestmark = pytest.mark.functional

PILOT_GROUP = "WaveGuard - Wave 1 Pilot"


@pytest.fixture
def stores() -> StateStores:
    return build_memory_state()


@pytest.fixture
def queues() -> MemoryQueues:
    return MemoryQueues()


@pytest.fixture
def started() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def deps(
    app_environ: dict[str, str], stores: StateStores, queues: MemoryQueues, started: list[tuple[str, str]]
) -> GroupChangeDeps:
    settings = load_settings(app_environ)

    async def start_membership(wave: str, *, correlation_id: str) -> object:
        started.append((wave, correlation_id))
        return None

    return GroupChangeDeps(
        load_plan_for(settings),
        build_graph_client(settings),
        stores.aio,
        queues,
        start_membership=start_membership,
    )


def _graph(emulator: EmulatorHandle, method: str, path: str, body: Any = None) -> None:
    # "Someone" in the tenant: a plain Graph call, not WaveGuard's guarded client.
    httpx.request(method, f"{emulator.base_url}{path}", json=body, headers=ADMIN_HEADERS).raise_for_status()


def _add(emulator: EmulatorHandle, group_id: str, member: str) -> None:
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member}"}
    _graph(emulator, "POST", f"/groups/{group_id}/members/$ref", ref)


def _members(emulator: EmulatorHandle, group_id: str) -> set[str]:
    page = httpx.get(f"{emulator.base_url}/groups/{group_id}/members?$select=id&$top=999").json()
    return {m["id"] for m in page["value"]}


def _alertnames(queues: MemoryQueues) -> list[str]:
    return [e.payload["labels"]["alertname"] for e in queues.on(ALERTS)]


def _pilot_group(emulator: EmulatorHandle, members: list[str] = ()) -> str:  # type: ignore[assignment]
    """The pilot wave's group, as the rollout would have created it."""
    response = httpx.post(
        f"{emulator.admin_url}/groups", json={"displayName": PILOT_GROUP, "members": members}
    )
    response.raise_for_status()
    return str(response.json()["id"])


async def _deliver(deps: GroupChangeDeps, queues: MemoryQueues, envelope: Envelope) -> Any:
    """The envelope through the worker pipeline, as the queue trigger delivers it."""
    pipeline = PipelineDeps("group-changes", ACTOR, deps.state, queues)
    return await handle_envelope(envelope.to_json(), group_change_routes(deps), pipeline, on_permanent=settle)


async def _enforce(stores: StateStores, wave: str) -> None:
    await replace_wave_state(stores.aio.kv, wave, WaveState.ENFORCED, datetime.now(UTC), etag=None)


async def test_a_break_glass_account_added_to_a_wave_group_is_removed_again_and_paged(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot, account = _pilot_group(emulator_server), demo.break_glass_ids[0]
    # GIVEN the worker has looked at the pilot wave group once (nothing to repair)
    first = await react_to_group(deps, pilot, correlation_id="c0")
    assert (first.status, first.roles, _alertnames(queues)) == ("checked", ("wave:pilot",), [])
    # WHEN someone adds a break-glass account to it and Graph's notification arrives
    _add(emulator_server, pilot, account)
    envelope = Envelope(
        type=CHANGE_TYPE, payload={"entries": [{"resource": f"Groups/{pilot}", "changeType": "updated"}]}
    )
    [repair] = await _deliver(deps, queues, envelope)
    # THEN it is out of the group again, audited, and a critical BreakGlassTargeted is raised
    assert (repair.status, repair.removed_break_glass) == ("repaired", [account])
    assert account not in _members(emulator_server, pilot)
    assert [e.action for e in stores.audit.list()] == ["breakglass.target.revert"]
    assert _alertnames(queues) == ["BreakGlassTargeted"]
    assert queues.on(ALERTS)[0].payload["severity"] == "critical"
    # AND it is an open alert on the pilot wave, which holds its promotion until resolved
    [open_alert] = await list_open_alerts(stores.aio.kv, "pilot")
    assert open_alert.key == f"group-changes:BreakGlassTargeted:{pilot}"
    # AND the next look (WaveGuard's own removal) changes nothing more
    again = await react_to_group(deps, pilot, correlation_id="c2")
    assert (again.status, again.removed_break_glass, _alertnames(queues)) == (
        "checked",
        [],
        ["BreakGlassTargeted"],
    )


async def test_overlapping_notifications_for_one_change_react_once(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    _add(emulator_server, pilot, demo.break_glass_ids[1])
    repairs = await asyncio.gather(*(react_to_group(deps, pilot, correlation_id=f"n{i}") for i in range(4)))
    assert sorted(len(r.removed_break_glass) for r in repairs) == [0, 0, 0, 1]
    assert _alertnames(queues) == ["BreakGlassTargeted"]


async def test_a_break_glass_account_taken_out_of_the_exclusion_group_is_put_back_and_paged(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    exclusion, account = demo.break_glass_group_id, demo.break_glass_ids[1]
    await react_to_group(deps, exclusion, correlation_id="c0")
    # WHEN someone removes a break-glass account from the exclusion group
    _graph(emulator_server, "DELETE", f"/groups/{exclusion}/members/{account}/$ref")
    repair = await react_to_group(deps, exclusion, correlation_id="c1")
    # THEN it is back, and a critical BreakGlassExclusionRemoved is raised, open on every wave
    assert (repair.status, repair.restored_break_glass) == ("repaired", [account])
    assert account in _members(emulator_server, exclusion)
    assert _alertnames(queues) == ["BreakGlassExclusionRemoved"]
    for wave in deps.plan.waves:
        assert [a.key for a in await list_open_alerts(stores.aio.kv, wave.name)] == [
            f"group-changes:BreakGlassExclusionRemoved:{exclusion}"
        ]


async def test_the_first_look_at_the_exclusion_group_already_restores_a_missing_account(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    exclusion, account = demo.break_glass_group_id, demo.break_glass_ids[0]
    _graph(emulator_server, "DELETE", f"/groups/{exclusion}/members/{account}/$ref")
    repair = await react_to_group(deps, exclusion, correlation_id="c0")
    assert repair.restored_break_glass == [account]
    assert account in _members(emulator_server, exclusion)


async def test_a_watched_group_deleted_is_paged(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    _graph(emulator_server, "DELETE", f"/groups/{pilot}")
    repair = await react_to_group(deps, pilot, correlation_id="c1")
    assert repair.status == "deleted"
    assert _alertnames(queues) == ["WatchedGroupDeleted"]
    stored = stores.kv.get(DELTA_NAMESPACE, pilot)
    assert stored is not None
    assert stored.value["deleted"] is True


async def test_a_group_nobody_watches_is_ignored(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    # the IT pilot selector group is watched only once the pilot wave has a group
    repair = await react_to_group(deps, demo.it_pilot_group_id, correlation_id="c0")
    assert repair.status == "ignored"
    assert queues.on(ALERTS) == []


async def test_a_selector_group_change_starts_the_waves_membership_sync(
    deps: GroupChangeDeps,
    emulator_server: EmulatorHandle,
    stores: StateStores,
    started: list[tuple[str, str]],
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    _pilot_group(emulator_server)
    selector = demo.it_pilot_group_id
    first = await react_to_group(deps, selector, correlation_id="c0")
    assert first.roles == ("selector:pilot",)
    sales = next(str(u["id"]) for u in emulator_server.store.users.values() if u["department"] == "Sales")
    # a planned wave does not sync yet
    _add(emulator_server, selector, sales)
    assert (await react_to_group(deps, selector, correlation_id="c1")).syncs_started == []
    # a started one does, with the same membership sync the timer uses
    await _enforce(stores, "pilot")
    _graph(emulator_server, "DELETE", f"/groups/{selector}/members/{sales}/$ref")
    repair = await react_to_group(deps, selector, correlation_id="c2")
    assert repair.syncs_started == ["pilot"]
    [(wave, run_key)] = started
    assert wave == "pilot"
    assert run_key.startswith(f"group-change:{selector}:")
    # the next change, even in a message with the same id, starts a new sync run
    _add(emulator_server, selector, sales)
    await react_to_group(deps, selector, correlation_id="c2")
    assert [w for w, _ in started] == ["pilot", "pilot"]
    assert started[1][1] != run_key
    # a break-glass account joining a selector group moves nobody (and is not removed from it)
    _add(emulator_server, selector, demo.break_glass_ids[0])
    quiet = await react_to_group(deps, selector, correlation_id="c3")
    assert (quiet.syncs_started, quiet.removed_break_glass) == ([], [])


@pytest.mark.parametrize("readd", [False, True])
async def test_a_member_removed_from_an_enforced_wave_by_someone_else_is_alerted(
    deps: GroupChangeDeps,
    emulator_server: EmulatorHandle,
    stores: StateStores,
    queues: MemoryQueues,
    readd: bool,
) -> None:
    it = [str(u["id"]) for u in emulator_server.store.users.values() if u["department"] == "IT"][:3]
    pilot = _pilot_group(emulator_server, it)
    await _enforce(stores, "pilot")
    if readd:
        plan = deps.plan.model_copy(
            update={
                "group_changes": deps.plan.group_changes.model_copy(
                    update={"readd_removed_wave_members": True}
                )
            }
        )
        deps = GroupChangeDeps(
            plan, deps.graph, deps.state, deps.queues, start_membership=deps.start_membership
        )
    await react_to_group(deps, pilot, correlation_id="c0")
    # WaveGuard's own sync planned to remove it[0]; someone else removes it[1]
    stores.kv.put(SYNC_NAMESPACE, "latest:pilot", {"runId": "run-1"})
    stores.kv.put(SYNC_NAMESPACE, "run-1", {"totalChunks": 1})
    stores.kv.put(SYNC_NAMESPACE, "run-1:0", {"add": [], "remove": [it[0]]})
    _graph(emulator_server, "DELETE", f"/groups/{pilot}/members/{it[0]}/$ref")
    _graph(emulator_server, "DELETE", f"/groups/{pilot}/members/{it[1]}/$ref")
    repair = await react_to_group(deps, pilot, correlation_id="c1")
    assert repair.removed_wave_members == [it[1]]
    assert _alertnames(queues) == ["WaveMemberRemoved"]
    assert queues.on(ALERTS)[0].payload["severity"] == "high"
    assert (it[1] in _members(emulator_server, pilot)) is readd
    assert it[0] not in _members(emulator_server, pilot)
    actions = sorted(e.action for e in stores.audit.list())
    expected = ["wave.member.readd", "wave.member.removed"] if readd else ["wave.member.removed"]
    assert actions == expected


async def test_a_delta_link_graph_no_longer_knows_falls_back_to_a_full_read(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    exclusion = demo.break_glass_group_id
    stale = f"{emulator_server.base_url}/groups/delta?$deltatoken=eyJzIjogOTk5OTksICJpZHMiOiBudWxsfQ%3D%3D"
    stores.kv.put(DELTA_NAMESPACE, exclusion, {"deltaLink": stale, "at": "2026-01-01T00:00:00+00:00"})
    _graph(emulator_server, "DELETE", f"/groups/{exclusion}/members/{demo.break_glass_ids[0]}/$ref")
    repair = await react_to_group(deps, exclusion, correlation_id="c0", trigger="resync")
    assert repair.restored_break_glass == [demo.break_glass_ids[0]]


async def test_the_daily_resync_finds_drift_a_lost_notification_hid(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    _add(emulator_server, pilot, demo.break_glass_ids[0])  # its notification never arrives
    envelope = Envelope(type=RESYNC_TYPE, payload={"entries": [{"resource": f"groups/{pilot}"}]})
    [repair] = await _deliver(deps, queues, envelope)
    assert repair.removed_break_glass == [demo.break_glass_ids[0]]


def _managed_policy(emulator: EmulatorHandle, include: str, exclude: str) -> None:
    """A WaveGuard policy as the baseline writes it: the wave group in, the exclusion group out."""
    body = {
        "displayName": "WaveGuard - Require MFA",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "users": {"includeGroups": [include], "excludeGroups": [exclude]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    _graph(emulator, "POST", "/identity/conditionalAccess/policies", body)


async def test_the_exclusion_group_a_policy_excludes_is_never_treated_as_a_targeted_group(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot, exclusion = _pilot_group(emulator_server), demo.break_glass_group_id
    _managed_policy(emulator_server, pilot, exclusion)
    # the first look sees both break-glass accounts in the exclusion group: nothing to do
    first = await react_to_group(deps, exclusion, correlation_id="c0")
    assert (first.status, first.removed_break_glass) == ("checked", [])
    assert "exclusion" in first.roles
    # taken out, put back; the next look sees WaveGuard's own re-add and leaves it alone
    _graph(emulator_server, "DELETE", f"/groups/{exclusion}/members/{demo.break_glass_ids[0]}/$ref")
    assert (await react_to_group(deps, exclusion, correlation_id="c1")).restored_break_glass == [
        demo.break_glass_ids[0]
    ]
    again = await react_to_group(deps, exclusion, correlation_id="c2")
    assert (again.status, again.removed_break_glass, again.restored_break_glass) == ("checked", [], [])
    assert set(demo.break_glass_ids) <= _members(emulator_server, exclusion)
    # the policy's included group is watched as a policy group: a break-glass account is taken out
    _add(emulator_server, pilot, demo.break_glass_ids[1])
    repair = await react_to_group(deps, pilot, correlation_id="c3")
    assert set(repair.roles) == {"wave:pilot", "policy"}
    assert repair.removed_break_glass == [demo.break_glass_ids[1]]


async def test_a_quiet_look_never_hides_the_next_change(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    # nothing changed: Graph may hand back the very same delta link
    quiet = await react_to_group(deps, pilot, correlation_id="c1")
    assert quiet.status == "checked"
    _add(emulator_server, pilot, demo.break_glass_ids[0])
    repair = await react_to_group(deps, pilot, correlation_id="c2")
    assert repair.removed_break_glass == [demo.break_glass_ids[0]]


async def test_one_bad_entry_in_a_batch_does_not_keep_the_other_groups_unlooked(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    _add(emulator_server, pilot, demo.break_glass_ids[0])
    entries = [{"resource": "groups/../users", "changeType": "updated"}, {"resource": f"groups/{pilot}"}]
    await _deliver(deps, queues, Envelope(type=CHANGE_TYPE, payload={"entries": entries}))
    # the bad entry is settled (audited and alerted) and the pilot group was still repaired
    assert demo.break_glass_ids[0] not in _members(emulator_server, pilot)
    assert sorted(_alertnames(queues)) == ["BreakGlassTargeted", "GroupChangeFailed"]


async def test_a_first_read_after_a_notification_still_syncs_the_selectors_waves(
    deps: GroupChangeDeps,
    emulator_server: EmulatorHandle,
    stores: StateStores,
    started: list[tuple[str, str]],
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    _pilot_group(emulator_server)
    await _enforce(stores, "pilot")
    # no link stored yet: the notification's change cannot be told apart, the sync runs anyway
    repair = await react_to_group(deps, demo.it_pilot_group_id, correlation_id="c0")
    assert repair.syncs_started == ["pilot"]
    # the daily resync's first read does not (nothing says anything changed)
    stores.kv.delete(DELTA_NAMESPACE, demo.it_pilot_group_id)
    resync = await react_to_group(deps, demo.it_pilot_group_id, correlation_id="r0", trigger="resync")
    assert resync.syncs_started == []


async def test_a_group_gone_before_the_first_read_is_reported_deleted(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    pilot = _pilot_group(emulator_server)
    await react_to_group(deps, pilot, correlation_id="c0")
    stores.kv.put(DELTA_NAMESPACE, pilot, {"roles": ["wave:pilot"], "at": "x"})  # link lost
    _graph(emulator_server, "DELETE", f"/groups/{pilot}")
    repair = await react_to_group(deps, pilot, correlation_id="c1")
    assert repair.status == "deleted"
    assert _alertnames(queues) == ["WatchedGroupDeleted"]


async def test_removals_of_earlier_sync_runs_are_waveguards_own_too(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    it = [str(u["id"]) for u in emulator_server.store.users.values() if u["department"] == "IT"][:2]
    pilot = _pilot_group(emulator_server, it)
    await _enforce(stores, "pilot")
    await react_to_group(deps, pilot, correlation_id="c0")
    # run-1 removed it[0]; run-2 (planned after) is the latest and does not list it
    for run, removes in (("run-1", [it[0]]), ("run-2", [])):
        stores.kv.put(SYNC_NAMESPACE, run, {"totalChunks": 1})
        stores.kv.put(SYNC_NAMESPACE, f"{run}:0", {"add": [], "remove": removes})
    stores.kv.put(SYNC_NAMESPACE, "recent:pilot", {"runIds": ["run-1", "run-2"]})
    stores.kv.put(SYNC_NAMESPACE, "latest:pilot", {"runId": "run-2"})
    _graph(emulator_server, "DELETE", f"/groups/{pilot}/members/{it[0]}/$ref")
    repair = await react_to_group(deps, pilot, correlation_id="c1")
    assert repair.removed_wave_members == []
    assert queues.on(ALERTS) == []
