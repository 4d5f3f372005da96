"""`waveguard permfa report [--wave W] [--json]`: per-user MFA, wave by wave, against CA coverage.

Reads each wave's members and every member's per-user MFA state (Graph beta, 20 users per
``$batch``), with progress on stderr. For each wave: how many users are ``disabled``, ``enabled``,
``enforced`` (or ``unknown``: not readable, with the reason), whether Conditional Access enforces
MFA for the wave yet, the users who still depend on per-user MFA (their wave is not enforced) and
those ready to move off it (enforced by CA already: prompted twice over). Break-glass accounts are
listed apart and left as the tenant set them. The counts are kept for `waves status` and `doctor`.

`waveguard permfa migrate WAVE [--dry-run] [--yes] [--json]` moves the wave's users off per-user
MFA (``disabled``) once Conditional Access covers them and they are registered for MFA: never for
a wave CA does not enforce (refused), never for break-glass accounts or members the policy
excludes; at most the wave's ``blastRadius`` users per run; each user's previous state written to
the ledger before the first change and audited. `waveguard permfa rollback WAVE [--dry-run]
[--yes] [--json]` puts back what the ledger recorded.

Exit codes: 0 done (or previewed); 1 Graph or storage failed, a write failed for some users, the
run was refused (the wave is not enforced by CA, the live policy narrows MFA, another run holds the
wave) or not confirmed; 2 usage or input error (unknown wave, invalid settings or plan, --yes
missing when not interactive).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail, require_wave
from shared.config import load_plan_for, load_settings
from shared.errors import ConfigError, NotFoundError, WaveGuardError
from shared.rollout.permfa import PerUserMfaReport, build_report
from shared.rollout.permfa.migrate import (
    MigrationPlan,
    MigrationResult,
    RollbackPlan,
    RollbackResult,
    migrate,
    plan_migration,
    plan_rollback,
    rollback,
)

_SHOWN = 10


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("permfa", help="per-user MFA: where it stands against Conditional Access, per wave")
    verbs = cmd.add_subparsers(dest="permfa_command", metavar="{report,migrate,rollback}", required=True)
    report = verbs.add_parser("report", help="per-user MFA states per wave, and who CA does not cover yet")
    report.add_argument("--wave", metavar="WAVE", help="only this wave (not saved for waves status)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(run=run_report)
    move = verbs.add_parser("migrate", help="move a CA-enforced wave's registered users off per-user MFA")
    move.add_argument("wave", metavar="WAVE")
    move.add_argument("--dry-run", action="store_true", help="show who would be moved, change nothing")
    move.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    move.add_argument("--json", action="store_true", help="print the plan or the result as JSON")
    move.set_defaults(run=run_migrate)
    back = verbs.add_parser("rollback", help="restore the per-user MFA states a migration changed")
    back.add_argument("wave", metavar="WAVE")
    back.add_argument("--dry-run", action="store_true", help="show what would be restored, change nothing")
    back.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    back.add_argument("--json", action="store_true", help="print the plan or the result as JSON")
    back.set_defaults(run=run_rollback)


def _progress(done: int, total: int) -> None:
    print(f"\rreading per-user MFA states: {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def run_report(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        settings = load_settings(env)
        plan = load_plan_for(settings)
        if args.wave is not None:
            require_wave(plan, args.wave)
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)

    async def go() -> PerUserMfaReport:
        from shared.graph import build_graph_client
        from shared.state import build_state

        client = build_graph_client(settings)
        return await build_report(
            client, plan, build_state(settings).aio.kv, wave=args.wave, progress=_progress
        )

    try:
        report = asyncio.run(go())
    except WaveGuardError as exc:
        return fail(f"permfa report: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report))
    return EXIT_OK


def render(report: PerUserMfaReport) -> str:
    lines = [f"Per-user MFA, {report.at:%Y-%m-%d %H:%M} UTC"]
    header = ("wave", "CA", "members", "disabled", "enabled", "enforced", "unknown")
    lines.append("  {:<16} {:<10} {:>7} {:>8} {:>7} {:>8} {:>7}".format(*header))
    for wave in report.waves:
        c = wave.counts
        ca = "enforced" if wave.ca_enforced else wave.wave_state
        lines.append(
            f"  {wave.wave:<16} {ca:<10} {len(wave.members):>7} {c['disabled']:>8} {c['enabled']:>7} "
            f"{c['enforced']:>8} {c['unknown']:>7}"
        )
    for wave in report.waves:
        if wave.depends_on_per_user:
            names = ", ".join(m.upn or m.id for m in wave.depends_on_per_user[:_SHOWN])
            more = len(wave.depends_on_per_user) - _SHOWN
            lines.append(
                f"{wave.wave}: {len(wave.depends_on_per_user)} user(s) depend on per-user MFA until CA "
                f"enforces the wave (keep it on for now): {names}{f' and {more} more' if more > 0 else ''}"
            )
        if wave.ready_to_move:
            lines.append(
                f"{wave.wave}: {len(wave.ready_to_move)} user(s) on per-user MFA although CA enforces the "
                "wave: prompted on every sign-in; ready to move off per-user MFA"
            )
        unknown = [m for m in wave.members if m.state == "unknown"]
        if unknown:
            lines.append(f"{wave.wave}: {len(unknown)} state(s) unreadable, e.g. {unknown[0].error}")
    for account in report.break_glass:
        lines.append(f"break-glass {account.id}: per-user MFA {account.state} (left as the tenant set it)")
    return "\n".join(lines)


def _step_progress(what: str, done: int, total: int) -> None:
    print(f"\r{what}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def _ask(prompt: str) -> bool:
    """The question on stderr (stdout may be --json); end of input is a no."""
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        return False


def run_migrate(
    args: argparse.Namespace,
    env: Mapping[str, str],
    confirm: Callable[[str], bool] = _ask,
    interactive: Callable[[], bool] = sys.stdin.isatty,
) -> int:
    return _run_write(args, env, confirm, interactive, _migrate)


def run_rollback(
    args: argparse.Namespace,
    env: Mapping[str, str],
    confirm: Callable[[str], bool] = _ask,
    interactive: Callable[[], bool] = sys.stdin.isatty,
) -> int:
    return _run_write(args, env, confirm, interactive, _rollback)


def _run_write(
    args: argparse.Namespace,
    env: Mapping[str, str],
    confirm: Callable[[str], bool],
    interactive: Callable[[], bool],
    verb: Callable[..., Any],
) -> int:
    if not (args.dry_run or args.yes or interactive()):
        return fail("--yes: required when not running interactively (or use --dry-run)", EXIT_USAGE)
    try:
        settings = load_settings(env)
        plan = load_plan_for(settings)
        require_wave(plan, args.wave)
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    from shared.graph import build_graph_client
    from shared.state import build_state

    context = {
        "client": build_graph_client(settings),
        "plan": plan,
        "stores": build_state(settings).aio,
        "actor": actor_of(env),
        "correlation_id": f"cli-{uuid.uuid4().hex}",
    }
    try:
        code: int = asyncio.run(verb(args, context, confirm))
    except WaveGuardError as exc:
        return fail(f"permfa {args.permfa_command}: {exc}", EXIT_FAILED)
    return code


async def _migrate(args: argparse.Namespace, ctx: dict[str, Any], confirm: Callable[[str], bool]) -> int:
    client, plan, stores = ctx["client"], ctx["plan"], ctx["stores"]
    decided = await plan_migration(client, plan, stores.kv, args.wave, progress=_step_progress)

    async def write() -> MigrationResult:
        # The plan the operator confirmed is the one written (coverage is checked again before writing).
        return await migrate(client, plan, stores, args.wave, decided=decided, **_run_context(ctx))

    return await _confirm_then_write(
        args,
        confirm,
        (decided.to_dict(), lambda dry: render_migration_plan(decided, dry_run=dry)),
        f"Disable per-user MFA for {len(decided.to_disable)} user(s)?" if decided.to_disable else "",
        write,
        render_migration_result,
        "not migrated",
    )


async def _rollback(args: argparse.Namespace, ctx: dict[str, Any], confirm: Callable[[str], bool]) -> int:
    client, plan, stores = ctx["client"], ctx["plan"], ctx["stores"]
    decided = await plan_rollback(client, plan, stores.kv, args.wave)

    async def write() -> RollbackResult:
        return await rollback(client, plan, stores, args.wave, decided=decided, **_run_context(ctx))

    return await _confirm_then_write(
        args,
        confirm,
        (decided.to_dict(), lambda dry: render_rollback_plan(decided, dry_run=dry)),
        f"Restore per-user MFA for {len(decided.to_restore)} user(s)?" if decided.to_restore else "",
        write,
        render_rollback_result,
        "not rolled back",
    )


def _run_context(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"actor": ctx["actor"], "correlation_id": ctx["correlation_id"], "progress": _step_progress}


async def _confirm_then_write(
    args: argparse.Namespace,
    confirm: Callable[[str], bool],
    preview: tuple[dict[str, Any], Callable[[bool], str]],
    question: str,
    write: Callable[[], Awaitable[Any]],
    render_result: Callable[[Any], str],
    nothing_done: str,
) -> int:
    """Print the plan; with nothing to do or ``--dry-run`` stop there; else confirm (unless --yes),
    write, print the result. Exit 1 when not confirmed or when a write failed for some users."""
    body, render_plan = preview
    if args.dry_run or not question:
        _print(args.json, body, render_plan(args.dry_run))
        return EXIT_OK
    print(render_plan(False), file=sys.stderr if args.json else sys.stdout)
    if not args.yes and not confirm(f"{question} [y/N] "):
        print(
            f"not {args.permfa_command}d: not confirmed".replace("rollbackd", "rolled back"), file=sys.stderr
        )
        return EXIT_FAILED
    result = await write()
    _print(args.json, result.to_dict(), render_result(result))
    return EXIT_FAILED if result.failed else EXIT_OK


def _print(as_json: bool, body: dict[str, Any], text: str) -> None:
    print(json.dumps(body, indent=2) if as_json else text)


def _names(members: Any) -> str:
    shown = [m.upn or m.id for m in list(members)[:_SHOWN]]
    more = len(members) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def render_migration_plan(decided: MigrationPlan, *, dry_run: bool) -> str:
    verb = "would disable" if dry_run else "to disable"
    lines = [f"per-user MFA migration of wave {decided.wave} (Conditional Access enforces it):"]
    for exemption in decided.exemptions:
        lines.append(f"  note: after the move, {exemption} (the plan's Conditional Access choice)")
    lines.append(
        f"  {verb}: {len(decided.to_disable)} user(s)"
        + (f": {_names(decided.to_disable)}" if decided.to_disable else "")
    )
    reasons = [
        (decided.over_cap, f"over the wave's blastRadius of {decided.blast_radius}: left for the next run"),
        (decided.not_registered, "not registered for MFA yet: kept on per-user MFA"),
        (decided.excluded_from_ca, "excluded from the Require MFA policy: CA does not cover them, kept"),
        (decided.unknown, "state unreadable: not guessed, kept"),
    ]
    for members, why in reasons:
        if members:
            lines.append(f"  {len(members)} {why}: {_names(members)}")
    for account in decided.break_glass:
        lines.append(f"  break-glass {account.id}: per-user MFA {account.state}, left as the tenant set it")
    return "\n".join(lines)


def render_migration_result(result: MigrationResult) -> str:
    lines = [
        f"wave {result.plan.wave}: per-user MFA disabled for {len(result.disabled)} user(s) "
        f"({result.write.write_requests} write request(s), {result.write.throttled} throttled; "
        f"run {result.run})"
    ]
    for user_id, why in sorted(result.failed.items()):
        lines.append(f"  failed {user_id}: {why}")
    if result.plan.over_cap:
        lines.append(f"  {len(result.plan.over_cap)} user(s) left over the blastRadius: run migrate again")
    lines.append(f"  undo with: waveguard permfa rollback {result.plan.wave}")
    return "\n".join(lines)


def render_rollback_plan(decided: RollbackPlan, *, dry_run: bool) -> str:
    verb = "would restore" if dry_run else "to restore"
    lines = [f"per-user MFA rollback of wave {decided.wave}: {verb} {len(decided.to_restore)} user(s)"]
    for entry in decided.to_restore[:_SHOWN]:
        lines.append(f"  {entry.upn or entry.user_id}: back to {entry.previous}")
    if len(decided.to_restore) > _SHOWN:
        lines.append(f"  and {len(decided.to_restore) - _SHOWN} more")
    for user_id, why in sorted(decided.refused.items()):
        lines.append(f"  refused {user_id}: {why}")
    return "\n".join(lines)


def render_rollback_result(result: RollbackResult) -> str:
    expected = {e.user_id: e.previous for e in result.plan.to_restore}
    lines = [f"wave {result.plan.wave}: per-user MFA restored for {len(result.restored)} user(s)"]
    for user_id, now in sorted(result.restored.items()):
        if now != expected.get(user_id):
            lines.append(
                f"  {user_id}: restored as {now}, not {expected.get(user_id)} "
                "(Graph enforces per-user MFA at once for a user already registered)"
            )
    for user_id, why in sorted(result.failed.items()):
        lines.append(f"  failed {user_id}: {why} (run rollback again)")
    return "\n".join(lines)
