"""The group-changes worker against the Graph emulator: break-glass changes made by anyone are undone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.graph import build_graph_client
from shared.group_changes.notifications import CHANGE_TYPE
from shared.group_changes.worker import ACTOR, GroupChangeDeps, group_change_routes, react_to_group, settle
from shared.names import ALERTS
from shared.pipeline import PipelineDeps, handle_envelope
from shared.queues import MemoryQueues
from shared.state import StateStores, build_memory_state

pytestmark = pytest.mark.functional


@pytest.fixture
def stores() -> StateStores:
    return build_memory_state()


@pytest.fixture
def queues() -> MemoryQueues:
    return MemoryQueues()


@pytest.fixture
def deps(app_environ: dict[str, str], stores: StateStores, queues: MemoryQueues) -> GroupChangeDeps:
    settings = load_settings(app_environ)
    return GroupChangeDeps(load_plan_for(settings), build_graph_client(settings), stores.aio, queues)


def _graph(emulator: EmulatorHandle, method: str, path: str, body: Any = None) -> None:
    # "Someone" in the tenant: a plain Graph call, not WaveGuard's guarded client.
    httpx.request(method, f"{emulator.base_url}{path}", json=body).raise_for_status()


def _members(emulator: EmulatorHandle, group_id: str) -> set[str]:
    page = httpx.get(f"{emulator.base_url}/groups/{group_id}/members?$select=id&$top=999").json()
    return {m["id"] for m in page["value"]}


def _alertnames(queues: MemoryQueues) -> list[str]:
    return [e.payload["labels"]["alertname"] for e in queues.on(ALERTS)]


async def test_a_break_glass_account_added_to_a_watched_group_is_removed_again_and_paged(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, stores: StateStores, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    pilot, account = demo.it_pilot_group_id, demo.break_glass_ids[0]
    # GIVEN the worker has looked at the IT pilot selector group once (nothing to repair)
    first = await react_to_group(deps, pilot, correlation_id="c0")
    assert (first.status, _alertnames(queues)) == ("checked", [])
    # WHEN someone adds a break-glass account to it and Graph's notification arrives
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{account}"}
    _graph(emulator_server, "POST", f"/groups/{pilot}/members/$ref", ref)
    envelope = Envelope(
        type=CHANGE_TYPE, payload={"entries": [{"resource": f"groups/{pilot}", "changeType": "updated"}]}
    )
    pipeline = PipelineDeps("group-changes", ACTOR, deps.state, queues)
    [repair] = await handle_envelope(
        envelope.to_json(), group_change_routes(deps), pipeline, on_permanent=settle
    )
    # THEN it is out of the group again, audited, and a critical BreakGlassTargeted is raised
    assert (repair.status, repair.removed_break_glass) == ("repaired", [account])
    assert account not in _members(emulator_server, pilot)
    assert [e.action for e in stores.audit.list()] == ["breakglass.target.revert"]
    assert _alertnames(queues) == ["BreakGlassTargeted"]
    assert queues.on(ALERTS)[0].payload["severity"] == "critical"
    # AND the same notification delivered again changes nothing more (WaveGuard's own removal is seen)
    again = await react_to_group(deps, pilot, correlation_id="c2")
    assert (again.status, again.removed_break_glass) == ("checked", [])


async def test_a_break_glass_account_taken_out_of_the_exclusion_group_is_put_back_and_paged(
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    exclusion, account = demo.break_glass_group_id, demo.break_glass_ids[1]
    await react_to_group(deps, exclusion, correlation_id="c0")
    # WHEN someone removes a break-glass account from the exclusion group
    _graph(emulator_server, "DELETE", f"/groups/{exclusion}/members/{account}/$ref")
    repair = await react_to_group(deps, exclusion, correlation_id="c1")
    # THEN it is back, and a critical BreakGlassExclusionRemoved is raised
    assert (repair.status, repair.restored_break_glass) == ("repaired", [account])
    assert account in _members(emulator_server, exclusion)
    assert _alertnames(queues) == ["BreakGlassExclusionRemoved"]


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
    deps: GroupChangeDeps, emulator_server: EmulatorHandle, queues: MemoryQueues
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    await react_to_group(deps, demo.it_pilot_group_id, correlation_id="c0")
    _graph(emulator_server, "DELETE", f"/groups/{demo.it_pilot_group_id}")
    repair = await react_to_group(deps, demo.it_pilot_group_id, correlation_id="c1")
    assert repair.status == "deleted"
    assert _alertnames(queues) == ["WatchedGroupDeleted"]


async def test_a_resource_that_is_not_a_group_is_settled_not_retried(
    deps: GroupChangeDeps, queues: MemoryQueues
) -> None:
    envelope = Envelope(
        type=CHANGE_TYPE, payload={"entries": [{"resource": "users/abc", "changeType": "updated"}]}
    )
    pipeline = PipelineDeps("group-changes", ACTOR, deps.state, queues)
    outcome = await handle_envelope(
        envelope.to_json(), group_change_routes(deps), pipeline, on_permanent=settle
    )
    assert type(outcome).__name__ == "InvalidPayloadError"
    assert _alertnames(queues) == ["GroupChangeFailed"]
