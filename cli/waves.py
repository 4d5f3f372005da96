"""`waveguard waves`: the rollout at a glance, approvals, rollbacks and one evaluation on demand.

Exit codes: 0 done; 1 the operation failed (Graph or storage error, the CA baseline lint
blocked the policy sync); 2 usage or input error (unknown wave, a wave not in a state the
command applies to, a rollback not confirmed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cli.common import EXIT_OK, EXIT_USAGE, actor_of, fail, group_drift, require_wave
from cli.wave_alerts import add_commands as add_alert_commands
from cli.wave_announce import add_command as add_announce_command
from cli.wave_sync import add_command as add_sync_command
from shared.config import load_settings
from shared.errors import ConfigError, NotFoundError, WaveGuardError
from shared.rollout.lifecycle import (
    EvaluationResult,
    InvalidTransitionError,
    LifecycleDeps,
    WaveRow,
    evaluate_waves,
    record_approval,
    rollback_wave,
    rows_from,
)
from shared.rollout.permfa import last_report, summary_line
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import AuditEntry

_BAR_WIDTH: Final = 20


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "waves", help="rollout waves: status, approve, rollback, evaluate, sync, alerts, announce"
    )
    waves = p.add_subparsers(dest="waves_command", metavar="ACTION", required=True)
    status = waves.add_parser(
        "status", help="a table per wave: state, members, registration, gates, next step"
    )
    status.add_argument("--json", action="store_true", help="print the rows as JSON")
    status.set_defaults(run=run_status)
    approve = waves.add_parser("approve", help="approve promoting WAVE once its gates pass")
    approve.add_argument("wave", metavar="WAVE")
    approve.add_argument("--reason", default="", help="why (kept in the audit log)")
    approve.add_argument("--json", action="store_true", help="print the approval as JSON")
    approve.set_defaults(run=run_approve)
    rollback = waves.add_parser("rollback", help="take an enforced WAVE back to report-only")
    rollback.add_argument("wave", metavar="WAVE")
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rollback.add_argument("--reason", default="operator rollback", help="why (kept in the audit log)")
    rollback.add_argument("--json", action="store_true", help="print the outcome as JSON")
    rollback.add_argument(
        "--accept-no-mfa",
        action="store_true",
        help="roll back even though users of the wave were moved off per-user MFA (an emergency): they "
        "have no MFA until `waveguard permfa rollback WAVE`",
    )
    rollback.set_defaults(run=run_rollback)
    evaluate = waves.add_parser("evaluate", help="run the rollout timer's evaluation once")
    evaluate.add_argument("--dry-run", action="store_true", help="print what it would do; change nothing")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(run=run_evaluate)
    add_alert_commands(waves)
    add_sync_command(waves)
    add_announce_command(waves)


def _deps(env: Mapping[str, str]) -> LifecycleDeps:
    from shared.graph import build_graph_client
    from shared.services import build_services

    settings = load_settings(env)
    return build_services(settings).lifecycle_for(client=build_graph_client(settings), actor=actor_of(env))


def _correlation_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def progress_bar(rate: float | None, width: int = _BAR_WIDTH) -> str:
    """``[########------------]  40%``; ``[--------------------]    -`` when unknown."""
    if rate is None:
        return "[" + "-" * width + "]    -"
    filled = round(max(0.0, min(1.0, rate)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {rate * 100:3.0f}%"


def render_table(rows: list[WaveRow]) -> str:
    """The human status table: one block per wave."""
    lines: list[str] = []
    for row in rows:
        since = f" since {row.since[:16].replace('T', ' ')}" if row.since else ""
        failure = (
            "-" if row.report_only_failure_rate is None else f"{row.report_only_failure_rate * 100:.1f}%"
        )
        lines += [
            f"{row.wave}  [{row.state}{since}]",
            f"  members      {row.members}",
            f"  registered   {progress_bar(row.registered_rate)}  ({row.registered}/{row.members})",
            f"  report-only  failure rate {failure}  ({row.report_only_sign_ins})",
            *_experience_lines(row),
            *_announced_lines(row),
            f"  gates        passed: {', '.join(row.gates_passed) or '-'}; "
            f"failing: {', '.join(row.gates_failing) or '-'}",
            f"  next         {row.next_action}: {row.detail}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _experience_lines(row: WaveRow) -> list[str]:
    """The ticket and prompt gates' figures, for the waves whose plan sets them."""
    lines = []
    for label, unit, gate in (
        ("mfa tickets", "per 100 members", row.mfa_tickets),
        ("mfa prompts", "per user-day", row.mfa_prompts),
    ):
        if gate is not None:
            measured = "-" if gate.measured is None else f"{gate.measured:.2f}"
            lines.append(f"  {label:<12} {measured} {unit}, at most {gate.threshold:g}  ({gate.detail})")
    return lines


def _announced_lines(row: WaveRow) -> list[str]:
    """The announcement notice gate, for the waves whose plan sets it."""
    gate = row.announced
    if gate is None:
        return []
    share = "-" if gate.measured is None else f"{gate.measured * 100:.0f}%"
    return [f"  announced    {share} told in time, at least {gate.threshold * 100:g}%  ({gate.detail})"]


def render_result(result: EvaluationResult) -> str:
    """What an evaluation did (or would do), one line per wave."""
    verb = "would" if result.dry_run else "did"
    lines = [f"evaluation ({'dry run' if result.dry_run else 'applied'}):"]
    for d in result.decisions:
        moved = f" -> {d.new_state.value}" if d.applied and d.new_state else ""
        lines.append(f"  {d.wave:<20} {d.state.value:<12}{moved:<16} {verb}: {d.action} ({d.detail})")
    if result.policy_synced:
        lines.append("  CA baseline synced")
    for n in result.nudges:
        lines.append(
            f"  nudges {n.wave}: {len(n.sent)} sent, {len(n.escalated)} escalated, "
            f"{n.skipped} skipped, {len(n.failed)} failed"
        )
    for a in result.announcements:
        lines.append(
            f"  announcements {a.wave} ({a.stage}): {a.sent} sent, {a.recovered} recovered, "
            f"{a.failed} failed, {a.remaining} still to send"
            + (f" (stopped: {a.stopped})" if a.stopped else "")
        )
    return "\n".join(lines) + "\n"


def run_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        deps = _deps(env)
        result = asyncio.run(evaluate_waves(deps, correlation_id=_correlation_id(), dry_run=True))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves status: {exc}")
    rows = rows_from(result)
    try:
        drifts = group_drift(load_settings(env), deps.plan)
        per_user = asyncio.run(last_report(deps.stores.kv))
    except WaveGuardError as exc:
        return fail(f"waves status: {exc}")
    if args.json:
        body = {
            "waves": [r.to_dict() for r in rows],
            "groupRenames": [d.to_dict() for d in drifts],
            "perUserMfa": per_user,
        }
        print(json.dumps(body, indent=2))
    else:
        sys.stdout.write(render_table(rows))
        for drift in drifts:
            print(f"rename pending: {drift} (`waveguard policies apply` renames it)")
        print(
            summary_line(per_user) if per_user else "per-user MFA: no report yet (`waveguard permfa report`)"
        )
    return EXIT_OK


def run_approve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        deps = _deps(env)
        require_wave(deps.plan, args.wave)
        state = asyncio.run(read_wave_state(deps.stores.kv, args.wave)).state
        if state is WaveState.ENFORCED:
            return fail(f"wave {args.wave!r} is already enforced; nothing to approve", EXIT_USAGE)
        actor, now = actor_of(env), datetime.now(UTC)
        asyncio.run(record_approval(deps.stores.kv, args.wave, actor=actor, at=now, reason=args.reason))
        asyncio.run(
            deps.stores.audit.append(
                AuditEntry(
                    actor=actor,
                    action="wave.approve",
                    target=args.wave,
                    reason=args.reason or "approved",
                    correlation_id=_correlation_id(),
                    details={"state": state.value},
                )
            )
        )
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves approve {args.wave}: {exc}")
    if args.json:
        approval = {"wave": args.wave, "state": state.value, "approvedBy": actor}
        print(json.dumps({**approval, "approvedAt": now.isoformat(), "reason": args.reason}, indent=2))
        return EXIT_OK
    print(f"wave {args.wave!r} ({state.value}): promotion approved; it is promoted once every gate passes")
    return EXIT_OK


def _confirmed(wave: str) -> bool:
    if not sys.stdin.isatty():  # nobody to ask (CI, a pipe): only --yes confirms
        return False
    try:
        answer = input(f"Roll wave {wave!r} back to report-only (MFA no longer enforced)? [y/N] ")
    except (EOFError, OSError):
        return False
    return answer.strip().lower() in {"y", "yes"}


def run_rollback(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        deps = _deps(env)
        require_wave(deps.plan, args.wave)
        state = asyncio.run(read_wave_state(deps.stores.kv, args.wave)).state
        if state is not WaveState.ENFORCED:
            return fail(
                f"wave {args.wave!r} is {state.value}, not enforced; nothing to roll back", EXIT_USAGE
            )
        if not args.yes and not _confirmed(args.wave):
            return fail(f"wave {args.wave!r}: rollback not confirmed (pass --yes)", EXIT_USAGE)
        status = asyncio.run(
            rollback_wave(
                deps,
                args.wave,
                actor=actor_of(env),
                correlation_id=_correlation_id(),
                reason=args.reason,
                accept_no_mfa=args.accept_no_mfa,
            )
        )
    except (ConfigError, NotFoundError, InvalidTransitionError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves rollback {args.wave}: {exc}")
    if args.json:
        outcome = {"wave": args.wave, "from": WaveState.ENFORCED.value, "state": status.state.value}
        print(json.dumps({**outcome, "policiesSynced": True, "reason": args.reason}, indent=2))
        return EXIT_OK
    print(f"wave {args.wave!r} rolled back to {status.state.value}; CA baseline synced")
    return EXIT_OK


def run_evaluate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        deps = _deps(env)
        result = asyncio.run(evaluate_waves(deps, correlation_id=_correlation_id(), dry_run=args.dry_run))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves evaluate: {exc}")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(render_result(result))
    return EXIT_OK
