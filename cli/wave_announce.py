"""`waveguard waves announce WAVE`: preview or send a wave's announcement now.

The rollout timer sends each announcement by itself (docs/waves.md, 'Announcements'); this command
previews it (``--dry-run``: the message one member would get, and the counts) or sends what is due
now, through the same exactly-once path and the same mail budget as the timer.

Exit codes: 0 done (or a dry run); 1 Graph or storage failed, or some members could not be sent
to (they are sent on the next run); 2 usage or input error (unknown wave or stage, communications
off for the wave, a stage the wave is not in).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail, require_wave
from shared.config.communications import STAGES, Stage
from shared.errors import ConfigError, NotFoundError, WaveGuardError
from shared.rollout.lifecycle.announcements import (
    Announcer,
    AnnounceReport,
    communications_enabled,
    stage_for,
)
from shared.rollout.wave_state import read_wave_state


def add_command(waves: Any) -> None:
    """Register ``announce`` under ``waveguard waves``."""
    announce = waves.add_parser(
        "announce", help="preview (--dry-run) or send WAVE's announcement of its next stage now"
    )
    announce.add_argument("wave", metavar="WAVE")
    announce.add_argument(
        "--stage",
        metavar="STAGE",
        help="reportOnly or enforce (default: the one the wave's state calls for)",
    )
    announce.add_argument("--dry-run", action="store_true", help="preview one message and the counts")
    announce.add_argument("--json", action="store_true", help="print the outcome as JSON")
    announce.set_defaults(run=run_announce)


def _announcer(env: Mapping[str, str]) -> Announcer:
    from cli.waves import _deps

    deps = _deps(env)
    if deps.announcer is None:
        raise ConfigError("the lifecycle has no announcer (communications are not set up)")
    return deps.announcer


def _stage(args: argparse.Namespace, state_stage: Stage | None, state: str) -> Stage:
    """The stage to announce; raises ValueError with the message for the operator."""
    if args.stage is not None and args.stage not in STAGES:
        raise ValueError(f"--stage: {args.stage!r} is not a stage (stages: {', '.join(STAGES)})")
    wanted: Stage | None = args.stage or state_stage
    if wanted is None:
        raise ValueError(
            f"wave {args.wave!r} is {state}: it has no announcement due "
            f"(reportOnly goes out while registering, enforce while in report-only); "
            f"--dry-run --stage STAGE previews one"
        )
    if wanted != state_stage and not args.dry_run:
        raise ValueError(
            f"wave {args.wave!r} is {state}: only "
            + (f"the {state_stage} announcement" if state_stage else "a preview")
            + f" can be sent now, not {wanted} (--dry-run previews any stage)"
        )
    return wanted


def run_announce(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        announcer = _announcer(env)
        plan = announcer.plan
        require_wave(plan, args.wave)
        wave = plan.wave(args.wave)
        if not communications_enabled(plan, wave):
            return fail(
                f"wave {args.wave!r}: communications are off (communications.enabled, or "
                f"waves[{plan.waves.index(wave)}].communications.enabled, in the plan)",
                EXIT_USAGE,
            )
        state = asyncio.run(read_wave_state(announcer.stores.kv, args.wave)).state
        try:
            stage = _stage(args, stage_for(state), state.value)
        except ValueError as exc:
            return fail(str(exc), EXIT_USAGE)

        async def still_due() -> bool:  # the wave may move while a long send runs
            return stage_for((await read_wave_state(announcer.stores.kv, args.wave)).state) == stage

        report = asyncio.run(
            announcer.run(
                wave,
                stage,
                actor=actor_of(env),
                correlation_id=f"cli-{uuid.uuid4().hex}",
                dry_run=args.dry_run,
                still_due=still_due,
            )
        )
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves announce {args.wave}: {exc}")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render_report(report), end="")
    if not report.dry_run and report.failed:
        return EXIT_FAILED
    return EXIT_OK


def render_report(report: AnnounceReport) -> str:
    """What a run did (or would do), for people."""
    head = f"wave {report.wave!r}, {report.stage} announcement ({'dry run' if report.dry_run else 'sent'}):"
    lines = [
        head,
        f"  members        {report.members}"
        + (f" ({report.break_glass} break-glass left out)" if report.break_glass else ""),
        f"  to send        {report.to_send}",
        f"  already sent   {report.already_sent}",
        f"  no mailbox     {report.no_mailbox}",
        f"  date           {report.date or '-'}",
    ]
    if not report.dry_run:
        lines.append(
            f"  this run       {report.sent} sent, {report.recovered} recovered, {report.failed} failed, "
            f"{report.busy} busy, {report.undeliverable} undeliverable, in {report.batches} batches; "
            f"{report.remaining} still to send" + (f" (stopped: {report.stopped})" if report.stopped else "")
        )
        if report.error:
            lines.append(f"  last error     {report.error}")
    if report.preview is not None:
        lines += [
            f"  preview to     {report.preview.to}",
            f"  subject        {report.preview.subject}",
            f"  body ({report.preview.format}):",
            *(f"    {line}" for line in report.preview.body.splitlines()),
        ]
    elif report.dry_run:
        lines.append("  preview        - (no member with a mailbox)")
    return "\n".join(lines) + "\n"
