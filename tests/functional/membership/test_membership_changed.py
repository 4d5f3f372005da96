"""The every-tick re-sync at the cost of what changed (``/users/delta``), against the Graph emulator
over HTTP and Azurite tables: a full read first, then one read when nothing changed, then a read
per changed user; back to a full read when the plan changes or Graph refuses the link."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.graph_emulator import EmulatorHandle
from shared.errors import RetryableError
from shared.names import WAVE_WORK
from shared.rollout.lifecycle import open_critical_alerts
from shared.rollout.membership import process_wave_work, read_sync_run
from shared.rollout.membership.changed import NAMESPACE, resync_started_waves
from tests.aio import aio
from tests.functional.membership.test_membership_sync import (
    BREAK_GLASS_UPN,
    SYNC_GROUP,
    Tenant,
    _deps,
    _plan_with_sync_wave,
)

pytestmark = pytest.mark.functional

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
WAVES = ["sync-test"]


@pytest.fixture
def tenant(app_environ: dict[str, str], emulator_server: EmulatorHandle) -> Tenant:
    return Tenant(emulator_server)


def _forget_requests(tenant: Tenant) -> None:
    tenant.http.delete(f"{tenant.handle.admin_url}/requests").raise_for_status()


def _graph_reads(tenant: Tenant) -> list[str]:
    return [r["path"] for r in tenant.requests("GET") if not r.get("batchId")]


async def _apply(deps: Any, queues: Any) -> None:
    for envelope in queues.on(WAVE_WORK):
        await process_wave_work(envelope.to_json(), deps)
    queues.sent.clear()


async def test_a_quiet_tick_is_one_read_and_a_changed_user_costs_one_more(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    people = tenant.add_people(300)
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    deps, queues = _deps(app_environ)
    # the first tick reads everyone (no delta link yet) and fills the wave
    first = await resync_started_waves(deps, WAVES, correlation_id="tick-1", now=T0)
    assert (first.mode, first.problems) == ("full", {})
    await _apply(deps, queues)
    assert tenant.members(group_id) == set(people)
    # a quiet tick: the delta link alone, nothing planned
    _forget_requests(tenant)
    quiet = await resync_started_waves(deps, WAVES, correlation_id="tick-2", now=T0 + timedelta(minutes=5))
    assert (quiet.mode, quiet.changed_users, queues.sent) == ("changed", 0, [])
    assert [p.split("?")[0] for p in _graph_reads(tenant)] == ["/v1.0/users/delta"]
    # one person moves out of the wave's department, a newcomer joins it, the break-glass account
    # moves into it: one delta read, a memberOf read per changed user, the wave's group and the
    # exclusion group looked up; the run touches only them
    leaver = people[7]
    newcomer = tenant.admin("POST", "/users", {"userPrincipalName": "new@contoso.com", "department": "Sync"})[
        "id"
    ]
    tenant.admin("PATCH", f"/users/{leaver}", {"department": "Legal"})
    bg = tenant.handle.store.find_user(BREAK_GLASS_UPN)
    assert bg is not None
    tenant.admin("PATCH", f"/users/{bg['id']}", {"department": "Sync"})
    _forget_requests(tenant)
    moved = await resync_started_waves(deps, WAVES, correlation_id="tick-3", now=T0 + timedelta(minutes=10))
    assert (moved.mode, moved.changed_users, moved.problems) == ("changed", 3, {})
    reads = [p.split("?")[0] for p in _graph_reads(tenant)]
    assert reads.count("/v1.0/users/delta") == 1
    batches = [r["path"] for r in tenant.requests("POST") if not r.get("batchId")]
    assert batches == ["/v1.0/$batch"]  # the three memberOf reads, in one batch
    items = [r["path"] for r in tenant.requests("GET") if r.get("batchId")]
    assert sorted(items) == sorted(f"/v1.0/users/{u}/memberOf" for u in (leaver, newcomer, bg["id"]))
    assert len(reads) <= 1 + 4  # the delta, the exclusion and wave group look-ups
    [envelope] = queues.on(WAVE_WORK)
    run = await read_sync_run(aio(deps.state), envelope.payload["runId"])
    assert run is not None
    assert (run["adds"], run["removes"]) == (1, 1)
    await _apply(deps, queues)
    assert tenant.members(group_id) == (set(people) - {leaver}) | {newcomer}
    assert bg["id"] not in tenant.members(group_id)
    # the next quiet tick is one read again
    _forget_requests(tenant)
    again = await resync_started_waves(deps, WAVES, correlation_id="tick-4", now=T0 + timedelta(minutes=15))
    assert (again.mode, again.changed_users) == ("changed", 0)
    assert len(_graph_reads(tenant)) == 1


async def test_a_changed_plan_a_refused_link_and_a_day_each_bring_a_full_read(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    tenant.add_people(20)
    tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})
    deps, _ = _deps(app_environ)
    assert (await resync_started_waves(deps, WAVES, correlation_id="t1", now=T0)).mode == "full"
    assert (await resync_started_waves(deps, WAVES, correlation_id="t2", now=T0)).mode == "changed"
    # the plan changes (a wider blast radius): full
    base_plan = deps.plan.model_copy(update={"waves": deps.plan.waves[1:]})
    wider = replace(deps, plan=_plan_with_sync_wave(base_plan, blast_radius=4999))
    assert (await resync_started_waves(wider, WAVES, correlation_id="t3", now=T0)).mode == "full"
    assert (await resync_started_waves(wider, WAVES, correlation_id="t4", now=T0)).mode == "changed"
    # Graph no longer knows the stored link: full, and a fresh link stored
    stored = await wider.state.kv.get(NAMESPACE, "tenant")
    assert stored is not None
    broken = {
        **stored.value,
        "deltaLink": stored.value["deltaLink"].split("?")[0] + "?$deltatoken=bm90LWEtdG9rZW4",
    }
    await wider.state.kv.put(NAMESPACE, "tenant", broken)
    assert (await resync_started_waves(wider, WAVES, correlation_id="t5", now=T0)).mode == "full"
    assert (await resync_started_waves(wider, WAVES, correlation_id="t6", now=T0)).mode == "changed"
    # a link that points away from Graph is never followed: full
    away = {**broken, "deltaLink": "https://attacker.example/v1.0/users/delta?$deltatoken=x"}
    await wider.state.kv.put(NAMESPACE, "tenant", away)
    assert (await resync_started_waves(wider, WAVES, correlation_id="t7", now=T0)).mode == "full"
    # a day after the last full read: full again
    later = T0 + timedelta(hours=24)
    assert (await resync_started_waves(wider, WAVES, correlation_id="t8", now=later)).mode == "full"


async def test_a_run_over_changed_users_never_clears_a_refused_full_runs_alert(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN a stored link, then a full run the blast radius refuses (30 to add, limit 10)
    people = tenant.add_people(30)
    tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})
    deps, _ = _deps(app_environ, blast_radius=10)
    first = await resync_started_waves(deps, WAVES, correlation_id="t1", now=T0)
    assert "blastRadius" in first.problems["sync-test"]
    assert await open_critical_alerts(aio(deps.state).kv, "sync-test")
    # WHEN one user changes: the refused wave is read in full again (still refused), never only
    # over the changed user
    tenant.admin("PATCH", f"/users/{people[0]}", {"country": "FR"})
    again = await resync_started_waves(deps, WAVES, correlation_id="t2", now=T0 + timedelta(minutes=5))
    # THEN the wave stays held by its alert
    assert "blastRadius" in again.problems["sync-test"]
    assert await open_critical_alerts(aio(deps.state).kv, "sync-test")
    # AND with the wave covered, a changed-users run within the radius leaves the alert open too
    covered = await deps.state.kv.get(NAMESPACE, "tenant")
    assert covered is not None
    await deps.state.kv.put(NAMESPACE, "tenant", {**covered.value, "waves": ["sync-test"]})
    tenant.admin("PATCH", f"/users/{people[1]}", {"country": "FR"})
    small = await resync_started_waves(deps, WAVES, correlation_id="t3", now=T0 + timedelta(minutes=10))
    assert (small.mode, small.problems) == ("changed", {})
    assert await open_critical_alerts(aio(deps.state).kv, "sync-test")


async def test_a_wave_whose_run_did_not_start_is_read_in_full_next_tick_and_holds_no_other_back(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN the wave's group does not exist yet at the first tick (created a moment later)
    people = tenant.add_people(40)
    deps, queues = _deps(app_environ)
    first = await resync_started_waves(deps, WAVES, correlation_id="t1", now=T0)
    assert "does not exist" in first.problems["sync-test"]
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    # WHEN the next tick runs with nothing changed in the directory
    second = await resync_started_waves(deps, WAVES, correlation_id="t2", now=T0 + timedelta(minutes=5))
    # THEN that wave is read in full (not only over changed users), and the group fills up
    assert (second.mode, second.problems) == ("changed", {})
    await _apply(deps, queues)
    assert tenant.members(group_id) == set(people)
    stored = await deps.state.kv.get(NAMESPACE, "tenant")
    assert stored is not None
    assert stored.value["waves"] == ["sync-test"]


async def test_a_changed_user_graph_cannot_find_yet_fails_the_tick_and_keeps_the_link(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    people = tenant.add_people(5)
    tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})
    deps, _ = _deps(app_environ)
    await resync_started_waves(deps, WAVES, correlation_id="t1", now=T0)
    before = await deps.state.kv.get(NAMESPACE, "tenant")
    tenant.admin("PATCH", f"/users/{people[2]}", {"department": "Legal"})
    tenant.admin("POST", "/faults", {"status": 404, "count": 1, "path": "/memberOf$"})
    with pytest.raises(RetryableError):
        await resync_started_waves(deps, WAVES, correlation_id="t2", now=T0 + timedelta(minutes=5))
    after = await deps.state.kv.get(NAMESPACE, "tenant")
    assert after is not None
    assert before is not None
    assert after.value == before.value  # the same changes are read again next tick
    retried = await resync_started_waves(deps, WAVES, correlation_id="t3", now=T0 + timedelta(minutes=6))
    assert (retried.mode, retried.changed_users, retried.problems) == ("changed", 1, {})
