"""Wave membership sync against the real Graph emulator (over HTTP) and Azurite tables."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from shared.config import RolloutPlan, Wave, load_plan_for, load_settings
from shared.envelope import Envelope
from shared.errors import BusyError, SafetyViolationError
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.names import ALERTS, TABLE_IDEMPOTENCY, WAVE_WORK
from shared.rollout.lifecycle import open_critical_alerts
from shared.rollout.membership import (
    ChunkOutcome,
    MembershipWriter,
    SyncDeps,
    process_wave_work,
    read_sync_run,
    start_wave_sync,
)
from shared.state import build_state
from shared.state.once import CompletionNotRecorded
from tests.aio import aio
from tests.functional.membership.claims import backdate_claim

pytestmark = pytest.mark.functional

SYNC_GROUP = "WaveGuard - Sync test"
BREAK_GLASS_UPN = "bg-admin1@contoso.onmicrosoft.com"


class RecordingQueues:
    """The queue port: keeps what was sent so the test can deliver it (and deliver it again)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []

    async def send(self, queue_name: str, envelope: Envelope, *, delay: Any = None, ttl: Any = None) -> str:
        self.sent.append((queue_name, envelope))
        return envelope.id

    def on(self, queue: str) -> list[Envelope]:
        return [e for q, e in self.sent if q == queue]


class WorkerKilled(BaseException):
    """The worker process dies: nothing after this point runs (no release, no record)."""


class KillAfter:
    """A $batch transport that lets ``batches`` through, then kills the worker after Graph answered."""

    def __init__(self, inner: Any, batches: int) -> None:
        self.inner = inner
        self.left = batches

    async def post_batch(self, payload: bytes) -> bytes:
        answer: bytes = await self.inner.post_batch(payload)
        self.left -= 1
        if self.left < 0:
            raise WorkerKilled
        return answer


class Tenant:
    def __init__(self, handle: EmulatorHandle) -> None:
        self.handle = handle
        self.http = httpx.Client(timeout=30)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.http.request(method, self.handle.admin_url + path, json=body).raise_for_status().json()

    def add_people(self, count: int) -> list[str]:
        people = [
            {
                "userPrincipalName": f"sync{i:05d}@contoso.com",
                "displayName": f"Sync {i}",
                "department": "Sync",
                "country": "GB",
            }
            for i in range(count)
        ]
        return [u["id"] for u in self.admin("POST", "/users", people)["value"]]

    def members(self, group_id: str) -> set[str]:
        url = f"{self.handle.base_url}/groups/{group_id}/members?$select=id&$top=999"
        found: set[str] = set()
        while url:
            page = self.http.get(url).raise_for_status().json()
            found |= {m["id"] for m in page["value"]}
            url = page.get("@odata.nextLink")
        return found

    def requests(self, method: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"/requests?method={method}")["value"])


def _plan_with_sync_wave(base: RolloutPlan, *, blast_radius: int = 5000) -> RolloutPlan:
    wave = Wave.model_validate(
        {
            "name": "sync-test",
            "group": {"displayName": SYNC_GROUP},
            "blastRadius": blast_radius,
            "selectors": {"departments": ["Sync"], "users": [BREAK_GLASS_UPN]},
        }
    )
    return base.model_copy(update={"waves": [wave, *base.waves]})


@pytest.fixture
def tenant(app_environ: dict[str, str], emulator_server: EmulatorHandle) -> Tenant:
    return Tenant(emulator_server)


def _deps(
    app_environ: dict[str, str],
    *,
    blast_radius: int = 5000,
    transport: Any = None,
    expiry: timedelta = timedelta(minutes=10),
    table_prefix: str | None = None,
) -> tuple[SyncDeps, RecordingQueues]:
    settings = load_settings(app_environ)
    client = build_graph_client(settings)
    batch = BatchClient.for_graph(client)
    if transport is not None:
        batch = BatchClient(transport(batch._transport))
    queues = RecordingQueues()
    deps = SyncDeps(
        plan=_plan_with_sync_wave(load_plan_for(settings), blast_radius=blast_radius),
        graph=client,
        writer=MembershipWriter(batch),
        state=build_state(settings, table_prefix=table_prefix or _table_prefix()).aio,
        queues=queues,
        chunk_claim_expiry=expiry,
    )
    return deps, queues


def _table_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


async def _deliver(deps: SyncDeps, envelopes: list[Envelope]) -> list[Any]:
    return [await process_wave_work(e.to_json(), deps) for e in envelopes]


async def test_sync_of_1000_users_with_429s_and_one_invalid_user_ends_with_exactly_the_desired_members(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN 1,000 people of the Sync department, the wave group holding a stranger, a break-glass
    # account matched by the wave's users selector
    people = tenant.add_people(1000)
    stranger = tenant.admin("POST", "/users", {"userPrincipalName": "x@contoso.com", "department": "Legal"})[
        "id"
    ]
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP, "members": [stranger]})["id"]
    deps, queues = _deps(app_environ)
    # WHEN the sync is planned
    run = await start_wave_sync(deps, "sync-test", correlation_id="tick-1")
    # THEN it plans 1,000 adds and 1 removal in 3 chunks, and reports the break-glass account skipped
    assert (run.adds, run.removes, run.total_chunks) == (1000, 1, 3)
    bg = tenant.handle.store.find_user(BREAK_GLASS_UPN)
    assert bg is not None
    assert run.break_glass_skipped == (bg["id"],)
    # AND WHEN one planned user is deleted before the writes, and Graph throttles some items
    invalid = people[421]
    tenant.handle.store.users.pop(invalid)
    tenant.admin("POST", "/faults", {"status": 429, "count": 4, "retryAfter": 1, "method": "PATCH"})
    outcomes = await _deliver(deps, queues.on(WAVE_WORK))
    # THEN the group holds exactly the desired members that exist
    assert all(isinstance(o, ChunkOutcome) and o.status == "done" for o in outcomes)
    assert tenant.members(group_id) == set(people) - {invalid}
    # AND progress says so: all chunks done, 999 added, 1 removed, 1 failed (the deleted user)
    record = await read_sync_run(aio(deps.state), run.run_id)
    assert record is not None
    progress = [record[k] for k in ("status", "doneChunks", "added", "removed", "failedCount")]
    assert progress == ["done", 3, 999, 1, 1]
    assert [f["memberId"] for f in record["failed"]] == [invalid]
    assert record["breakGlassSkipped"] == [bg["id"]]
    # AND the writes stayed near 1 per 20 members (50 PATCHes, the narrowing, the retried 429s)
    patches = tenant.requests("PATCH")
    assert len([p for p in patches if p["status"] == 204]) <= 50 + 10
    assert sum(p["status"] == 429 for p in patches) == 4


async def test_a_worker_killed_mid_sync_resumes_without_writing_anything_twice(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN 1,000 people and a planned sync of 3 chunks
    people = tenant.add_people(1000)
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    prefix = _table_prefix()
    deps, queues = _deps(app_environ, expiry=timedelta(seconds=30), table_prefix=prefix)
    run = await start_wave_sync(deps, "sync-test", correlation_id="tick-crash")
    envelopes = queues.on(WAVE_WORK)
    assert run.total_chunks == 3
    # WHEN a worker does chunk 0, writes chunk 1 to Graph and dies before recording it
    killer, _ = _deps(app_environ, transport=lambda inner: KillAfter(inner, 1))
    killer = SyncDeps(deps.plan, killer.graph, killer.writer, deps.state, queues, deps.chunk_claim_expiry)
    await process_wave_work(envelopes[0].to_json(), killer)
    with pytest.raises(WorkerKilled):
        await process_wave_work(envelopes[1].to_json(), killer)
    # THEN a redelivery while the dead worker's claim is fresh is deferred until the claim expires
    # (sent again with that delay; this delivery settles without burning a dequeue), not run twice
    before = len(queues.on(WAVE_WORK))
    deferred = await process_wave_work(envelopes[1].to_json(), deps)
    assert isinstance(deferred, BusyError)
    assert "another worker" in str(deferred)
    assert len(queues.on(WAVE_WORK)) == before + 1
    assert queues.on(WAVE_WORK)[-1].id == envelopes[1].id
    assert 0 < (deferred.retry_after or 0) <= deps.chunk_claim_expiry.total_seconds() + 1
    # AND WHEN every message is redelivered after the claim expired (chunk 0 twice as well): the
    # claim is back-dated past the expiry rather than waited for
    backdate_claim(
        app_environ["AzureWebJobsStorage"],
        f"wave-sync:{run.run_id}:1",
        datetime.now(UTC) - deps.chunk_claim_expiry - timedelta(minutes=1),
        table=prefix + TABLE_IDEMPOTENCY,
    )
    outcomes = await _deliver(deps, envelopes)
    # THEN the group holds exactly the 1,000 people, and no add was ever refused as a duplicate
    assert [o.status for o in outcomes] == ["duplicate", "done", "done"]
    assert tenant.members(group_id) == set(people)
    patches = tenant.requests("PATCH")
    assert [p for p in patches if p["status"] != 204] == []
    assert len(patches) == 50  # 1,000 members in PATCHes of 20: every member written once
    record = await read_sync_run(aio(deps.state), run.run_id)
    assert record is not None
    assert (record["status"], record["added"]) == ("done", 600)
    assert record["alreadyMembers"] == 400  # chunk 1: found in the group on resume, not rewritten


async def test_a_run_over_the_blast_radius_is_refused_alerted_and_holds_the_wave_until_a_sync_within_it(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN 300 people selected by a wave whose blastRadius is 100
    tenant.add_people(300)
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    prefix = _table_prefix()
    deps, queues = _deps(app_environ, blast_radius=100, table_prefix=prefix)
    # WHEN the sync is planned / THEN it is refused naming the counts, alerted, nothing enqueued
    with pytest.raises(SafetyViolationError, match=r"add 300 and remove 0 .*blastRadius of 100"):
        await start_wave_sync(deps, "sync-test", correlation_id="tick-big")
    assert queues.on(WAVE_WORK) == []
    [alert] = queues.on(ALERTS)
    assert alert.payload["labels"]["alertname"] == "WaveSyncBlastRadius"
    assert tenant.members(group_id) == set()
    assert tenant.requests("PATCH") == []
    # AND the alert stays open for the wave, so its "no open critical alert" gate holds promotion
    assert await open_critical_alerts(aio(deps.state.kv), "sync-test") == [alert.id]
    # WHEN the plan's blast radius is raised and the next sync is within it
    within, _ = _deps(app_environ, blast_radius=1000, table_prefix=prefix)
    await start_wave_sync(within, "sync-test", correlation_id="tick-next")
    # THEN the alert is resolved, and the audit log says so
    assert await open_critical_alerts(aio(within.state.kv), "sync-test") == []
    resolved = [e for e in within.state.audit.sync.list() if e.action == "alert.resolve"]
    assert [e.details["alertId"] for e in resolved] == [alert.id]


async def test_an_unknown_wave_work_type_is_settled_and_alerted(app_environ: dict[str, str]) -> None:
    # GIVEN a wave-work message of a type nobody handles
    deps, queues = _deps(app_environ)
    envelope = Envelope(type="wave.unknown", payload={})
    # WHEN it is processed / THEN it is settled as a permanent error naming the type, and alerted
    outcome = await process_wave_work(envelope.to_json(), deps)
    assert "unknown wave-work type" in str(outcome)
    assert [a.payload["labels"]["alertname"] for a in queues.on(ALERTS)] == ["WaveWorkRejected"]


class StorageHiccup(Exception):
    """An ordinary failure after Graph answered: the worker releases its claim and the host retries."""


class FailAfter(KillAfter):
    async def post_batch(self, payload: bytes) -> bytes:
        try:
            return await super().post_batch(payload)
        except WorkerKilled:
            raise StorageHiccup from None


async def test_a_retry_after_an_ordinary_failure_does_not_rewrite_what_was_written(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN 400 people (one chunk) and an attempt that wrote them all, then failed before recording
    people = tenant.add_people(400)
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    deps, queues = _deps(app_environ)
    await start_wave_sync(deps, "sync-test", correlation_id="tick-hiccup")
    [envelope] = queues.on(WAVE_WORK)
    failing, _ = _deps(app_environ, transport=lambda inner: FailAfter(inner, 0))
    failing = SyncDeps(deps.plan, failing.graph, failing.writer, deps.state, queues, deps.chunk_claim_expiry)
    with pytest.raises(StorageHiccup):
        await process_wave_work(envelope.to_json(), failing)
    assert len(tenant.requests("PATCH")) == 20
    # WHEN the host retries the message at once (the claim was released)
    [outcome] = await _deliver(deps, [envelope])
    # THEN the retry reads the group first and writes nothing again
    assert outcome.status == "done"
    assert tenant.members(group_id) == set(people)
    assert len(tenant.requests("PATCH")) == 20
    assert outcome.counts["alreadyMembers"] == 400


class CompleteFails(Exception):
    """Storage fails as the worker completes its claim, after the chunk's progress was recorded."""


async def test_a_chunk_whose_progress_was_recorded_is_not_applied_or_counted_again(
    tenant: Tenant, app_environ: dict[str, str]
) -> None:
    # GIVEN 400 people (one chunk) and a worker that wrote them and recorded its progress, then
    # died before completing its claim
    people = tenant.add_people(400)
    group_id = tenant.admin("POST", "/groups", {"displayName": SYNC_GROUP})["id"]
    prefix = _table_prefix()
    deps, queues = _deps(app_environ, table_prefix=prefix)
    await start_wave_sync(deps, "sync-test", correlation_id="tick-complete")
    [envelope] = queues.on(WAVE_WORK)
    idempotency = deps.state.idempotency

    class FailingComplete:
        def __getattr__(self, name: str) -> Any:
            return getattr(idempotency, name)

        def complete(self, *args: Any, **kwargs: Any) -> None:
            raise CompleteFails

    failing = SyncDeps(
        deps.plan,
        deps.graph,
        deps.writer,
        replace(deps.state, idempotency=FailingComplete()),  # type: ignore[arg-type]
        queues,
        deps.chunk_claim_expiry,
    )
    with pytest.raises(CompletionNotRecorded) as failed:  # retryable: the message comes back
        await process_wave_work(envelope.to_json(), failing)
    assert isinstance(failed.value.__cause__, CompleteFails)
    reads_before = len(tenant.requests("GET"))
    # WHEN its claim has expired and the host delivers the message again
    run_id = envelope.payload["runId"]
    backdate_claim(
        app_environ["AzureWebJobsStorage"],
        f"wave-sync:{run_id}:0",
        datetime.now(UTC) - deps.chunk_claim_expiry - timedelta(minutes=1),
        table=prefix + TABLE_IDEMPOTENCY,
    )
    [outcome] = await _deliver(deps, [envelope])
    # THEN the chunk is done without a Graph call, and the run's totals still count 400 added
    assert outcome.status == "done"
    assert len(tenant.requests("GET")) == reads_before
    assert len(tenant.requests("PATCH")) == 20
    assert tenant.members(group_id) == set(people)
    record = await read_sync_run(aio(deps.state), outcome.run_id)
    assert record is not None
    assert (record["status"], record["added"], record["alreadyMembers"]) == ("done", 400, 0)
