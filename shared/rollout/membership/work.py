"""Resumable wave membership sync: a persisted plan split into ``wave-work`` chunks.

Public entry point for the wave timer::

    run = await start_wave_sync(deps, "pilot", correlation_id=tick_id)   # -> SyncRun

It reads the directory (``desired_members``) and the wave group, plans the adds/removals
(``plan_membership``; over the blast radius: an alerted SafetyViolationError), stores the plan
in the KV namespace ``wave-sync`` (run record ``{run_id}``, chunks ``{run_id}:{n}``) and enqueues
one ``wave.sync.chunk`` envelope per chunk of up to 400 members (one ``$batch`` of 20 PATCHes of
20). The same ``correlation_id`` always gives the same run (a re-delivered tick re-enqueues, never
re-plans). Each chunk claims ``wave-sync:{run_id}:{n}`` in the idempotency store: a duplicate is
skipped, a chunk whose worker died is taken over after ``chunk_claim_expiry`` and first re-reads
the group so members written before the crash are not written again. Progress (done/total
chunks, added, removed, kept, failed) is merged into the run record by chunk number and logged.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.alerting import Alert, open_alert, raise_alert, resolve_open_alert
from shared.config import RolloutPlan
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError, NotFoundError, RetryableError, SafetyViolationError
from shared.graph.directory import find_group
from shared.names import WAVE_WORK
from shared.queues import Sender
from shared.rollout.group_refs import exclusion_group_id, refuse_exclusion_group, wave_field
from shared.rollout.membership.desired import desired_members
from shared.rollout.membership.plan import MembershipPlan, plan_membership
from shared.rollout.membership.reads import iter_member_ids
from shared.rollout.membership.writer import MembershipWriter, WriteResult
from shared.rollout.wave_groups import recorded_group_id
from shared.rollout.wave_state import read_wave_state
from shared.state import AsyncStores, AuditEntry, ConcurrencyError
from shared.state.once import once

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "CHUNK_MEMBERS",
    "NAMESPACE",
    "SYNC_CHUNK",
    "ChunkOutcome",
    "ChunkStatus",
    "SyncDeps",
    "SyncRun",
    "preview_wave_sync",
    "process_chunk",
    "read_sync_run",
    "start_wave_sync",
]

NAMESPACE: Final = "wave-sync"
SYNC_CHUNK: Final = "wave.sync.chunk"
CHUNK_MEMBERS: Final = 400
ACTOR: Final = "waveguard/membership-sync"
_TTL: Final = timedelta(days=14)
_MAX_FAILED_KEPT: Final = 50
_RECENT_RUNS: Final = 5
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncDeps:
    """Plan, Graph (client for reads, writer for writes), state, queues."""

    plan: RolloutPlan
    graph: GraphServiceClient
    writer: MembershipWriter
    state: AsyncStores
    queues: Sender
    chunk_claim_expiry: timedelta = timedelta(minutes=10)

    @classmethod
    def for_graph(
        cls, plan: RolloutPlan, graph: GraphServiceClient, state: AsyncStores, queues: Sender
    ) -> SyncDeps:
        """Dependencies over ``graph`` with a pacing writer of its own (one per process or tool run)."""
        from shared.graph.batch import BatchClient

        return cls(
            plan=plan,
            graph=graph,
            writer=MembershipWriter(BatchClient.for_graph(graph)),
            state=state,
            queues=queues,
        )


@dataclass(frozen=True, slots=True)
class SyncRun:
    """A planned run: its id, the wave group, its size and what it left alone."""

    run_id: str
    wave: str
    group_id: str
    total_chunks: int
    adds: int
    removes: int
    kept: tuple[str, ...] = ()
    break_glass_skipped: tuple[str, ...] = ()


class ChunkStatus(enum.StrEnum):
    """What handling one chunk did."""

    DONE = "done"
    DUPLICATE = "duplicate"  # an earlier delivery applied it


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """One chunk: ``done``, or ``duplicate`` (already done by an earlier delivery)."""

    status: ChunkStatus
    run_id: str
    chunk: int
    counts: dict[str, int] = field(default_factory=dict)


def run_id_for(wave: str, correlation_id: str) -> str:
    """A run id stable for one (wave, correlation id)."""
    return f"{wave}.{hashlib.sha256(f'{wave}\n{correlation_id}'.encode()).hexdigest()[:16]}"


Preview = Callable[[SyncDeps, str], Awaitable[MembershipPlan]]


async def start_wave_sync(
    deps: SyncDeps, wave_name: str, *, correlation_id: str, preview: Preview | None = None
) -> SyncRun:
    """Plan the wave's membership sync, persist it and enqueue its ``wave-work`` chunks.

    ``preview`` plans it (default: ``preview_wave_sync``, every user; ``membership.changed``
    plans only the users Graph reports changed).

    Raises:
        NotFoundError: the wave, its group or a selector group does not exist.
        SafetyViolationError: the run exceeds the wave's blast radius (alerted, nothing written).
        RetryableError: Graph or storage failed; calling again with the same id is safe.
    """
    run_id = run_id_for(wave_name, correlation_id)
    stored = await deps.state.kv.get(NAMESPACE, run_id)
    if stored is None:
        plan = await _plan(deps, wave_name, correlation_id, preview)
        chunks = _chunks(plan)
        for n, (adds, removes) in enumerate(chunks):
            await deps.state.kv.put(NAMESPACE, f"{run_id}:{n}", {"add": adds, "remove": removes})
        record = _run_record(run_id, plan, len(chunks), correlation_id)
        # A concurrent delivery of the same tick may have stored it first: same run.
        with contextlib.suppress(ConcurrencyError):
            await deps.state.kv.put(NAMESPACE, run_id, record, if_absent=True)
        await deps.state.kv.put(NAMESPACE, f"latest:{wave_name}", {"runId": run_id})
        await _remember_run(deps.state, wave_name, run_id)
        stored = await deps.state.kv.get(NAMESPACE, run_id)
    assert stored is not None
    run = _run_of(stored.value)
    for n in range(run.total_chunks):
        if str(n) not in stored.value["chunks"]:
            envelope = Envelope(
                type=SYNC_CHUNK, id=f"{run_id}:{n}", payload={"runId": run_id, "wave": wave_name, "chunk": n}
            )
            await deps.queues.send(WAVE_WORK, envelope)
    log.info(
        "wave sync planned",
        extra={
            "runId": run_id,
            "wave": wave_name,
            "chunks": run.total_chunks,
            "adds": run.adds,
            "removes": run.removes,
        },
    )
    return run


async def _plan(
    deps: SyncDeps, wave_name: str, correlation_id: str, preview: Preview | None
) -> MembershipPlan:
    try:
        planned = await (preview or preview_wave_sync)(deps, wave_name)
    except SafetyViolationError as exc:
        await _alert_blast_radius(deps, exc, wave_name, correlation_id)
        raise
    if preview is None:
        # Only a run over every user shows the wave's group is within its blast radius again: a
        # run over a few changed users says nothing about a full run that was refused.
        await _resolve_blast_radius(deps, wave_name, correlation_id)
    return planned


async def preview_wave_sync(
    deps: SyncDeps, wave_name: str, *, group_may_be_missing: bool = False
) -> MembershipPlan:
    """What a sync of the wave would change now; reads only (nothing written, enqueued or alerted).

    With ``group_may_be_missing`` (a dry run), a wave whose group does not exist yet (the rollout
    timer creates it when the wave starts) is planned against an empty group, ``group_id`` empty.

    Raises:
        KeyError: no wave has that name.
        NotFoundError: the wave's group or a selector group does not exist.
        SafetyViolationError: the run would exceed the wave's blast radius.
        RetryableError: Graph or storage failed.
    """
    wave = deps.plan.wave(wave_name)
    # Resolved once: the wave group and every selector group are compared with it by id.
    exclusion = await exclusion_group_id(deps.graph, deps.plan)
    desired = await desired_members(deps.graph, deps.plan, wave_name, exclusion_id=exclusion)
    try:
        group_id = await wave_group_id(deps, wave_name, exclusion)
    except NotFoundError:
        if not group_may_be_missing or wave.group.id:
            raise
        group_id = ""
    actual = [m async for m in iter_member_ids(deps.graph, group_id)] if group_id else []
    return plan_membership(wave, group_id, desired, actual, enforced_waves=await enforced_waves(deps))


async def enforced_waves(deps: SyncDeps) -> set[str]:
    """The waves whose state is enforced now (the never-lower-protection rule reads them).

    Raises:
        RetryableError: the state store failed.
    """
    enforced = set()
    for other in deps.plan.waves:
        if (await read_wave_state(deps.state.kv, other.name)).enforced:
            enforced.add(other.name)
    return enforced


async def wave_group_id(deps: SyncDeps, wave_name: str, exclusion: str) -> str:
    """The id of the wave's group, checked against the break-glass exclusion group.

    Raises:
        NotFoundError: the group does not exist.
        SafetyViolationError: it is the exclusion group.
        RetryableError: Graph or storage failed.
    """
    wave = deps.plan.wave(wave_name)
    # The group WaveGuard created and recorded comes first: a duplicate of its name cannot confuse it.
    by_id = wave.group.id or await recorded_group_id(deps.state.kv, wave_name)
    group = await find_group(deps.graph, group_id=by_id) if by_id else None
    if group is None and not wave.group.id:
        group = await find_group(deps.graph, display_name=wave.group.display_name)
    if group is None or not group.id:
        name = wave.group.id or wave.group.display_name
        raise NotFoundError(
            f"wave {wave_name}: its group {name!r} does not exist (the rollout timer creates a group "
            "named by displayName when the wave starts)",
            field="group",
        )
    refuse_exclusion_group(group.id, exclusion, field=wave_field(deps.plan, wave_name))
    return str(group.id)


def _blast_radius_key(wave: str) -> str:
    return f"wave-sync:{wave}:blast-radius"


async def _alert_blast_radius(
    deps: SyncDeps, exc: SafetyViolationError, wave: str, correlation_id: str
) -> None:
    entry = AuditEntry(ACTOR, "wave.sync.refused", wave, str(exc), correlation_id=correlation_id)
    await deps.state.audit.append(entry)
    # A plan aiming at the break-glass exclusion group stays open until an operator resolves it;
    # a blast-radius refusal resolves itself with the next sync within the radius.
    break_glass = exc.rule == "break-glass"
    key = f"wave-sync:{wave}:break-glass" if break_glass else _blast_radius_key(wave)
    name = "BreakGlassTargeted" if break_glass else "WaveSyncBlastRadius"
    alert = Alert(
        key=key,
        severity="critical",
        summary=str(exc),
        source=ACTOR,
        labels={"alertname": name, "severity": "critical", "wave": wave},
        details={"wave": wave, "rule": exc.rule, "field": exc.field},
    )
    envelope = await raise_alert(deps.queues, alert)
    # Open until a later sync of the wave is within its blast radius: the wave does not promote meanwhile.
    await open_alert(deps.state.kv, wave, alert, alert_id=envelope.id)


async def _resolve_blast_radius(deps: SyncDeps, wave: str, correlation_id: str) -> None:
    resolved = await resolve_open_alert(deps.state.kv, wave, key=_blast_radius_key(wave))
    if resolved is not None:
        reason = f"a sync of wave {wave} is within its blast radius again"
        entry = AuditEntry(
            ACTOR,
            "alert.resolve",
            wave,
            reason,
            correlation_id=correlation_id,
            details={"alertId": resolved.id, "key": resolved.key},
        )
        await deps.state.audit.append(entry)


def _chunks(plan: MembershipPlan) -> list[tuple[list[str], list[str]]]:
    ops = [("a", m) for m in plan.adds] + [("r", m) for m in plan.removes]
    chunks = []
    for i in range(0, len(ops), CHUNK_MEMBERS):
        part = ops[i : i + CHUNK_MEMBERS]
        chunks.append(([m for k, m in part if k == "a"], [m for k, m in part if k == "r"]))
    return chunks


def _run_record(run_id: str, plan: MembershipPlan, total: int, correlation_id: str) -> dict[str, Any]:
    return {
        "runId": run_id,
        "wave": plan.wave,
        "groupId": plan.group_id,
        "correlationId": correlation_id,
        "totalChunks": total,
        "adds": len(plan.adds),
        "removes": len(plan.removes),
        "kept": list(plan.kept)[:_MAX_FAILED_KEPT],
        "keptCount": len(plan.kept),
        "breakGlassSkipped": list(plan.break_glass_skipped),
        "chunks": {},
        "failed": [],
    }


def _run_of(value: dict[str, Any]) -> SyncRun:
    return SyncRun(
        value["runId"],
        value["wave"],
        value["groupId"],
        value["totalChunks"],
        value["adds"],
        value["removes"],
        tuple(value["kept"]),
        tuple(value["breakGlassSkipped"]),
    )


async def read_sync_run(state: AsyncStores, run_id: str) -> dict[str, Any] | None:
    """The run record with its progress (``doneChunks``, ``added``, ``removed``...), or None.

    Raises:
        RetryableError: the store is unavailable.
    """
    stored = await state.kv.get(NAMESPACE, run_id)
    if stored is None:
        return None
    value = dict(stored.value)
    chunks = value["chunks"].values()
    value["doneChunks"] = len(value["chunks"])
    for name in ("added", "alreadyMembers", "removed", "alreadyAbsent", "failedCount"):
        value[name] = sum(int(c.get(name, 0)) for c in chunks)
    value["status"] = "done" if value["doneChunks"] >= value["totalChunks"] else "running"
    return value


async def _remember_run(state: AsyncStores, wave: str, run_id: str) -> None:
    stored = await state.kv.get(NAMESPACE, f"recent:{wave}")
    runs = (
        list(stored.value.get("runIds", [])) if stored is not None and isinstance(stored.value, dict) else []
    )
    runs = [*[r for r in runs if r != run_id][-(_RECENT_RUNS - 1) :], run_id]
    await state.kv.put(NAMESPACE, f"recent:{wave}", {"runIds": runs})


async def planned_removals(state: AsyncStores, wave: str) -> frozenset[str]:
    """The members the wave's recent membership syncs remove (or removed): WaveGuard's own removals,
    which the group-change worker must not report as someone else's. Several runs count, since a
    burst of syncs can plan a new run before the previous one's removals are noticed.

    Raises:
        RetryableError: the store is unavailable.
    """
    recent = await state.kv.get(NAMESPACE, f"recent:{wave}")
    runs = (
        list(recent.value.get("runIds", [])) if recent is not None and isinstance(recent.value, dict) else []
    )
    latest = await state.kv.get(NAMESPACE, f"latest:{wave}")
    run_id = latest.value.get("runId") if latest is not None and isinstance(latest.value, dict) else None
    if isinstance(run_id, str) and run_id not in runs:
        runs.append(run_id)
    removed: set[str] = set()
    for one in runs:
        run = await state.kv.get(NAMESPACE, str(one))
        total = int(run.value.get("totalChunks", 0)) if run is not None and isinstance(run.value, dict) else 0
        for n in range(total):
            chunk = await state.kv.get(NAMESPACE, f"{one}:{n}")
            if chunk is not None and isinstance(chunk.value, dict):
                removed.update(str(m).lower() for m in chunk.value.get("remove") or [])
    return frozenset(removed)


async def process_chunk(deps: SyncDeps, envelope: Envelope) -> ChunkOutcome:
    """Apply one chunk once: duplicates are skipped, a dead worker's chunk is resumed.

    Raises:
        InvalidPayloadError: the payload or the stored chunk is malformed / missing.
        RetryableError: another worker holds the chunk, or Graph/storage failed.
    """
    run_id, chunk = _chunk_ref(envelope)
    key = f"wave-sync:{run_id}:{chunk}"
    async with once(
        deps.state.idempotency,
        key,
        ttl=_TTL,
        in_progress_expiry=deps.chunk_claim_expiry,
        busy_message="another worker holds this chunk",
        correlation_id=envelope.id,
    ) as run:
        if run.done:
            return ChunkOutcome(ChunkStatus.DUPLICATE, run_id, chunk, dict(run.result.get("counts", {})))
        recorded = await _recorded_counts(deps, run_id, chunk)
        if recorded is not None:
            # A worker died after recording this chunk's progress and before completing its claim:
            # the chunk is done; re-applying it would only re-count it (added 0, already N).
            counts = recorded
        else:
            counts, failed = await _apply_chunk(deps, run_id, chunk, resumed=run.taken_over)
            await _record_progress(deps, run_id, chunk, counts, failed)
        await run.complete({"counts": counts})
    return ChunkOutcome(ChunkStatus.DONE, run_id, chunk, counts)


async def _recorded_counts(deps: SyncDeps, run_id: str, chunk: int) -> dict[str, int] | None:
    run = await deps.state.kv.get(NAMESPACE, run_id)
    chunks = run.value.get("chunks") if run is not None and isinstance(run.value, dict) else None
    counts = chunks.get(str(chunk)) if isinstance(chunks, dict) else None
    return dict(counts) if isinstance(counts, dict) else None


def _chunk_ref(envelope: Envelope) -> tuple[str, int]:
    run_id, chunk = envelope.payload.get("runId"), envelope.payload.get("chunk")
    if not isinstance(run_id, str) or not run_id:
        raise InvalidPayloadError.for_field("payload.runId", "expected the run id")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 0:
        raise InvalidPayloadError.for_field("payload.chunk", "expected a chunk number (0 or more)")
    return run_id, chunk


async def _apply_chunk(
    deps: SyncDeps, run_id: str, chunk: int, *, resumed: bool
) -> tuple[dict[str, int], list[Any]]:
    run = await deps.state.kv.get(NAMESPACE, run_id)
    work = await deps.state.kv.get(NAMESPACE, f"{run_id}:{chunk}")
    if run is None or work is None:
        raise InvalidPayloadError.for_field("payload.runId", f"no stored sync run/chunk {run_id}:{chunk}")
    group_id = run.value["groupId"]
    adds, removes = list(work.value["add"]), list(work.value["remove"])
    # Marked before the first write: any later attempt (a dead worker's chunk taken over, or a retry
    # after an error released the claim) may find part of the chunk written already.
    attempted = await deps.state.kv.get(NAMESPACE, f"{run_id}:{chunk}:attempted")
    if attempted is None:
        await deps.state.kv.put(NAMESPACE, f"{run_id}:{chunk}:attempted", {"attempted": True})
    if resumed or attempted is not None:
        # What an earlier attempt wrote is in the group now: skip it rather than rewrite it.
        current = {m async for m in iter_member_ids(deps.graph, group_id)}
        adds = [m for m in adds if m not in current]
        removes = [m for m in removes if m in current]
    result = await deps.writer.apply(group_id, adds, removes)
    if result.added or result.removed:
        details = {"added": len(result.added), "removed": len(result.removed), "failed": result.failed[:20]}
        entry = AuditEntry(
            ACTOR,
            "wave.sync.chunk",
            run.value["wave"],
            f"sync run {run_id} chunk {chunk}",
            correlation_id=run.value["correlationId"],
            details=details,
        )
        await deps.state.audit.append(entry)
    return _counts(
        result, skipped=len(work.value["add"]) + len(work.value["remove"]) - len(adds) - len(removes)
    ), result.failed


def _counts(result: WriteResult, *, skipped: int) -> dict[str, int]:
    return {
        "added": len(result.added),
        "alreadyMembers": len(result.already_members) + skipped,
        "removed": len(result.removed),
        "alreadyAbsent": len(result.already_absent),
        "failedCount": len(result.failed),
        "writeRequests": result.write_requests,
        "throttled": result.throttled,
    }


async def _record_progress(
    deps: SyncDeps, run_id: str, chunk: int, counts: dict[str, int], failed: list[Any]
) -> None:
    for _ in range(20):
        stored = await deps.state.kv.get(NAMESPACE, run_id)
        assert stored is not None
        value = dict(stored.value)
        value["chunks"] = {**value["chunks"], str(chunk): counts}
        value["failed"] = (list(value["failed"]) + failed)[:_MAX_FAILED_KEPT]
        try:
            await deps.state.kv.put(NAMESPACE, run_id, value, if_match=stored.etag)
        except ConcurrencyError:
            continue
        progress = {"doneChunks": len(value["chunks"]), "totalChunks": value["totalChunks"], **counts}
        log.info(
            "wave sync progress", extra={"runId": run_id, "wave": value["wave"], "chunk": chunk, **progress}
        )
        return
    raise RetryableError("the sync run record kept changing", run_id=run_id)
