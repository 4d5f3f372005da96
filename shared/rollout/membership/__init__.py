"""Wave membership sync: desired members, the plan, batched writes, resumable ``wave-work`` chunks."""

from __future__ import annotations

from shared.rollout.membership.desired import DesiredMembers, desired_members
from shared.rollout.membership.plan import MembershipPlan, plan_membership
from shared.rollout.membership.work import (
    CHUNK_MEMBERS,
    NAMESPACE,
    SYNC_CHUNK,
    ChunkOutcome,
    SyncDeps,
    SyncRun,
    planned_removals,
    preview_wave_sync,
    process_chunk,
    read_sync_run,
    start_wave_sync,
)
from shared.rollout.membership.worker import process_wave_work
from shared.rollout.membership.writer import MembershipWriter, WritePacer, WriteResult

__all__ = [
    "CHUNK_MEMBERS",
    "NAMESPACE",
    "SYNC_CHUNK",
    "ChunkOutcome",
    "DesiredMembers",
    "MembershipPlan",
    "MembershipWriter",
    "SyncDeps",
    "SyncRun",
    "WritePacer",
    "WriteResult",
    "desired_members",
    "plan_membership",
    "planned_removals",
    "preview_wave_sync",
    "process_chunk",
    "process_wave_work",
    "read_sync_run",
    "start_wave_sync",
]
