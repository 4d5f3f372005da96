"""`waveguard permfa report [--wave W] [--json]`: per-user MFA, wave by wave, against CA coverage.

Reads each wave's members and every member's per-user MFA state (Graph beta, 20 users per
``$batch``), with progress on stderr. For each wave: how many users are ``disabled``, ``enabled``,
``enforced`` (or ``unknown``: not readable, with the reason), whether Conditional Access enforces
MFA for the wave yet, the users who still depend on per-user MFA (their wave is not enforced) and
those ready to move off it (enforced by CA already: prompted twice over). Break-glass accounts are
listed apart and left as the tenant set them. The counts are kept for `waves status` and `doctor`.

Exit codes: 0 report printed; 1 Graph or storage failed; 2 usage or input error (unknown wave,
invalid settings or plan).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, require_wave
from shared.config import load_plan_for, load_settings
from shared.errors import ConfigError, NotFoundError, WaveGuardError
from shared.rollout.permfa import PerUserMfaReport, build_report

_SHOWN = 10


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("permfa", help="per-user MFA: where it stands against Conditional Access, per wave")
    verbs = cmd.add_subparsers(dest="permfa_command", metavar="{report}", required=True)
    report = verbs.add_parser("report", help="per-user MFA states per wave, and who CA does not cover yet")
    report.add_argument("--wave", metavar="WAVE", help="only this wave (not saved for waves status)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(run=run_report)


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
