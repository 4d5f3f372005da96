"""`waveguard report`: the rollout report, as one self-contained HTML file and/or JSON.

Per wave: its state timeline, MFA registration and the report-only failure rate over time, its
per-user MFA counts and its open alerts; read from the state tables (the audit log, the daily
snapshots the rollout timer writes, the last saved per-user MFA report), never from Graph.

Exit codes: 0 written; 1 storage failed or a stored record could not be read; 2 usage or input
error (neither --html nor --json, an unknown wave, days out of range, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from shared.errors import ConfigError, InvalidPayloadError, WaveGuardError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="the rollout report: per wave its state timeline, registration, report-only failures, "
        "per-user MFA and open alerts (one HTML file, readable on a phone)",
    )
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="write the report as one self-contained HTML page"
    )
    p.add_argument("--json", action="store_true", help="print the report's content as JSON")
    p.add_argument("--wave", metavar="WAVE", help="only this wave")
    p.add_argument("--days", metavar="N", default="90", help="history window in days, 1 to 366 (default 90)")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from shared.config import load_plan_for, load_settings
    from shared.report import build_rollout_report, render_html, report_options, stale_after_for
    from shared.state import build_state

    if args.html is None and not args.json:
        return fail("report: give --html FILE, --json, or both", EXIT_USAGE)
    days = _days(args.days)
    if days is None:
        return fail(f"report: --days: expected a whole number from 1 to 366, got {args.days!r}", EXIT_USAGE)
    if args.html is not None:
        problem = _unwritable(args.html)
        if problem:
            return fail(f"report: --html {args.html}: {problem}", EXIT_USAGE)
    try:
        settings = load_settings(env)
        plan = load_plan_for(settings)
        options = report_options(plan, wave=args.wave, days=days)
    except (ConfigError, InvalidPayloadError) as exc:
        return fail(f"report: {exc}", EXIT_USAGE)
    try:
        stores = build_state(settings)
        stale_after = stale_after_for(env.get("WAVEGUARD_WAVE_SCHEDULE"))
        report = asyncio.run(
            build_rollout_report(
                plan, stores.aio, now=datetime.now(UTC), options=options, stale_after=stale_after
            )
        )
    except WaveGuardError as exc:  # storage failed, or a stored record cannot be read (named)
        return fail(f"report: {exc}", EXIT_FAILED)
    if args.html is not None:
        page = render_html(report)
        try:
            args.html.write_text(page, encoding="utf-8")
        except OSError as exc:
            return fail(f"report: --html {args.html}: {exc.strerror or exc}", EXIT_USAGE)
        charts = sum(1 for w in report.waves for c in w.charts if c.has_data)
        message = (
            f"report written to {args.html} ({len(page.encode()) // 1024} KiB; "
            f"{len(report.waves)} wave(s), {charts} chart(s))"
        )
        print(message, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return EXIT_OK


def _days(raw: str) -> int | None:
    """``--days`` checked as ``?days=`` is (ASCII digits, 1 to 366), never raising."""
    from shared.report import parse_days

    return parse_days(raw)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written (checked before anything is read), or None."""
    if path.is_dir():
        return "is a directory"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"no such directory: {parent}"
    return None
