"""`waveguard waves sync WAVE`: reconcile a wave's group with its selectors now, with progress.

The rollout timer does this for every started wave each tick; this command is for an operator
who changed a selector, or wants to see (``--dry-run``) what a sync would change. The run is the
timer's: planned and stored in the ``wave-sync`` state, split into ``wave-work`` chunks that the
``wave_worker`` function applies. The command follows the run's progress until it is done, or
applies the chunks itself with ``--inline`` (safe alongside a worker: each chunk is claimed once).

Exit codes: 0 done (or a dry run); 1 refused (blast radius), the wave group missing, members
failed, Graph or storage failed, or no worker applied the chunks in time; 2 usage or input error
(unknown wave, invalid settings or plan).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, require_wave
from shared.config import load_settings
from shared.envelope import Envelope
from shared.errors import ConfigError, NotFoundError, RetryableError, SafetyViolationError, WaveGuardError
from shared.graph import build_graph_client
from shared.rollout.membership import (
    SYNC_CHUNK,
    MembershipPlan,
    SyncDeps,
    SyncRun,
    preview_wave_sync,
    process_chunk,
    read_sync_run,
    start_wave_sync,
)
from shared.services import build_services

_BAR_WIDTH: Final = 20
_SHOWN: Final = 10


def add_command(waves: Any) -> None:
    """Register ``sync`` under ``waveguard waves``."""
    sync = waves.add_parser("sync", help="reconcile WAVE's group with its selectors now, with progress")
    sync.add_argument("wave", metavar="WAVE")
    sync.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    sync.add_argument("--inline", action="store_true", help="apply the chunks here, not by the wave worker")
    sync.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to follow a run the worker applies (default 300)",
    )
    sync.add_argument("--json", action="store_true", help="print the plan or the finished run as JSON")
    sync.set_defaults(run=run_sync_command)


def run_sync_command(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        settings = load_settings(env)
        services = build_services(settings)
        deps = SyncDeps.for_graph(
            services.plan, build_graph_client(settings), services.state, services.queues
        )
        require_wave(deps.plan, args.wave)
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves sync {args.wave}: {exc}", EXIT_FAILED)
    try:
        if args.dry_run:
            planned = asyncio.run(preview_wave_sync(deps, args.wave, group_may_be_missing=True))
            return _show_plan(planned, as_json=args.json)
        run, record = asyncio.run(_sync(deps, args.wave, inline=args.inline, wait=args.wait))
    except SafetyViolationError as exc:
        done = "a sync would be refused" if args.dry_run else "refused (alerted; nothing written)"
        return fail(f"waves sync {args.wave}: {done}: {exc}", EXIT_FAILED)
    except WaveGuardError as exc:
        return fail(f"waves sync {args.wave}: {exc}", EXIT_FAILED)
    if record is None:
        return fail(
            f"no worker applied the chunks of run {run.run_id} within {args.wait:.0f} s; they stay queued on "
            "wave-work for the wave_worker function (is the app running?), or run again with --inline",
            EXIT_FAILED,
        )
    return _finish(record, as_json=args.json)


async def _sync(
    deps: SyncDeps, wave: str, *, inline: bool, wait: float
) -> tuple[SyncRun, dict[str, Any] | None]:
    """One event loop for the whole run (the Graph client belongs to it)."""
    run = await start_wave_sync(deps, wave, correlation_id=f"cli-{uuid.uuid4().hex}")
    print(_describe(run), flush=True)
    if inline:
        return run, await _apply_inline(deps, run, wait)
    return run, await _follow(deps, run, wait)


def _show_plan(plan: MembershipPlan, *, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "wave": plan.wave,
                    "groupId": plan.group_id or None,
                    "adds": list(plan.adds),
                    "removes": list(plan.removes),
                    "kept": list(plan.kept),
                    "breakGlassSkipped": list(plan.break_glass_skipped),
                },
                indent=2,
            )
        )
        return EXIT_OK
    group = (
        f"group {plan.group_id}" if plan.group_id else "its group does not exist yet: created when it starts"
    )
    print(
        f"wave {plan.wave} ({group}), dry run: would add {len(plan.adds)} and remove "
        f"{len(plan.removes)} members"
    )
    for label, ids in (("add", plan.adds), ("remove", plan.removes)):
        if ids:
            more = f" (+{len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else ""
            print(f"  {label:<7} {', '.join(ids[:_SHOWN])}{more}")
    notes = (
        (plan.kept, "enforced members whose new wave is not enforced: kept (protection never drops)"),
        (plan.ignored, "group members that are not directory users: left alone"),
        (plan.break_glass_skipped, "break-glass accounts a selector named: never added"),
    )
    for ids, what in notes:
        if ids:
            print(f"  {len(ids)} {what}")
    return EXIT_OK


def _describe(run: SyncRun) -> str:
    skipped = f", {len(run.break_glass_skipped)} break-glass skipped" if run.break_glass_skipped else ""
    return (
        f"wave {run.wave}: run {run.run_id}: add {run.adds}, remove {run.removes} "
        f"in {run.total_chunks} chunk(s){skipped}"
    )


async def _apply_inline(deps: SyncDeps, run: SyncRun, wait: float) -> dict[str, Any] | None:
    for n in range(run.total_chunks):
        envelope = Envelope(
            type=SYNC_CHUNK,
            id=f"{run.run_id}:{n}",
            payload={"runId": run.run_id, "wave": run.wave, "chunk": n},
        )
        try:
            await process_chunk(deps, envelope)
        except RetryableError as exc:
            # A wave worker holds this chunk (it was enqueued too): it applies it; follow below.
            print(f"  chunk {n}: {exc}; left to it", flush=True)
            continue
        record = await read_sync_run(deps.state, run.run_id)
        if record is not None:
            print(_progress(record), flush=True)
    record = await read_sync_run(deps.state, run.run_id)
    if record is not None and record["status"] == "done":
        return record
    return await _follow(deps, run, wait)


async def _follow(deps: SyncDeps, run: SyncRun, wait: float) -> dict[str, Any] | None:
    """The finished run record, printing each change of progress; None when it did not finish in time."""
    deadline, shown = time.monotonic() + wait, ""
    while True:
        record = await read_sync_run(deps.state, run.run_id)
        if record is not None:
            line = _progress(record)
            if line != shown:
                print(line, flush=True)
                shown = line
            if record["status"] == "done":
                return record
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(1.0)


def _progress(record: dict[str, Any]) -> str:
    total, done = int(record["totalChunks"]), int(record["doneChunks"])
    filled = _BAR_WIDTH if total == 0 else round(done / total * _BAR_WIDTH)
    already = record["alreadyMembers"] + record["alreadyAbsent"]
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    return (
        f"  [{bar}] {done}/{total} chunks  added {record['added']}  removed {record['removed']}  "
        f"already {already}  failed {record['failedCount']}"
    )


def _finish(record: dict[str, Any], *, as_json: bool) -> int:
    failed = list(record.get("failed", []))
    if as_json:
        keys = (
            "runId",
            "wave",
            "groupId",
            "status",
            "totalChunks",
            "doneChunks",
            "added",
            "alreadyMembers",
            "removed",
            "alreadyAbsent",
            "failedCount",
            "failed",
            "breakGlassSkipped",
        )
        print(json.dumps({k: record.get(k) for k in keys}, indent=2))
    else:
        print(f"done: added {record['added']}, removed {record['removed']}, failed {record['failedCount']}")
        for item in failed[:_SHOWN]:
            print(f"  failed: {item}")
    return EXIT_FAILED if record["failedCount"] else EXIT_OK
