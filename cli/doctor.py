"""`waveguard doctor`: is the configuration usable, are storage and Graph reachable? Says what is wrong."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from cli.common import group_drift
from shared.config import Settings, load_plan_for, load_settings
from shared.errors import ConfigError
from shared.graph import build_graph_client
from shared.health import CheckResult, check_config, check_graph, check_storage
from shared.rollout.break_glass import BreakGlassReport, verify_break_glass

# What to do about a failed check, shown under it.
HINTS = {
    "settings": "fix the variables named above (app settings in Azure, local/local.settings.json locally)",
    "config": "fix the plan file at the paths named above; config/waveguard.yaml is a documented example",
    "storage": "is Azurite running (`make run`)? In Azure: check AzureWebJobsStorage and the identity's role",
    "graph": "is the Graph emulator running (`make run`)? In Azure: check GRAPH_BASE_URL and outbound access",
    "wave-groups": "the plan renamed these groups: `waveguard policies apply` renames them (audited)",
    "tenant": "each line says what the missing piece blocks and how to fix it (docs/policies.md, "
    "'Before the first apply')",
    "break-glass": "create the accounts/group named above or fix breakGlass in the plan; in Azure also check "
    "the identity has User.Read.All and GroupMember.Read.All",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check config, storage and Graph reachability and say what is wrong")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def _settings_check(env: Mapping[str, str]) -> tuple[Settings | None, CheckResult]:
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        return None, CheckResult("settings", False, str(exc), 0.0)
    where = "emulator" if settings.graph_is_emulator else "Microsoft Graph"
    detail = f"environment {settings.environment}; Graph {settings.graph_base_url} ({where})"
    return settings, CheckResult("settings", True, detail, 0.0)


def check_break_glass(settings: Settings) -> CheckResult:
    """Through WaveGuard's Graph client: each break-glass account exists and is in the exclusion group."""
    start = time.perf_counter()

    async def verify() -> BreakGlassReport:
        client = build_graph_client(settings)
        return await verify_break_glass(client, load_plan_for(settings).break_glass)

    try:
        report = asyncio.run(verify())
    except Exception as exc:  # doctor reports every failure, whatever its type
        return CheckResult("break-glass", False, f"{type(exc).__name__}: {exc}", _ms(start))
    if not report.ok:
        return CheckResult("break-glass", False, "\n".join(report.problems), _ms(start))
    names = ", ".join(a.configured_as for a in report.accounts)
    return CheckResult("break-glass", True, f"{names} found, all in the exclusion group", _ms(start))


def check_wave_groups(settings: Settings) -> CheckResult:
    """Every wave group is named in the tenant as in the plan (a rename is never silently ignored)."""
    start = time.perf_counter()
    try:
        drifts = group_drift(settings, load_plan_for(settings))
    except Exception as exc:  # doctor reports every failure, whatever its type
        return CheckResult("wave-groups", False, f"{type(exc).__name__}: {exc}", _ms(start))
    if drifts:
        return CheckResult("wave-groups", False, "\n".join(str(d) for d in drifts), _ms(start))
    return CheckResult("wave-groups", True, "every wave group is named as in the plan", _ms(start))


def check_tenant(settings: Settings) -> CheckResult:
    """Security defaults off, Entra ID P1 (P2 for risk), Authenticator and TAP enabled for users."""
    from shared.graph.client import get_json
    from shared.rollout.policies.preflight import Preflight, tenant_preflight

    start = time.perf_counter()

    async def read() -> Preflight:
        client = build_graph_client(settings)
        return await tenant_preflight(lambda path: get_json(client, path))

    try:
        preflight = asyncio.run(read())
    except Exception as exc:  # doctor reports every failure, whatever its type
        return CheckResult("tenant", False, f"{type(exc).__name__}: {exc}", _ms(start))
    lines = [str(f) for f in preflight.findings if not f.ok] or [
        "security defaults off, Entra ID P1 and P2, Authenticator and TAP enabled for all users"
    ]
    return CheckResult("tenant", preflight.ok, "\n".join(lines), _ms(start))


def check_per_user_mfa(settings: Settings) -> CheckResult:
    """The last `permfa report`: who still depends on per-user MFA, who is ready to move off it."""
    from shared.rollout.permfa import last_report, summary_line
    from shared.state import build_state

    start = time.perf_counter()
    try:
        saved = asyncio.run(last_report(build_state(settings).aio.kv))
    except Exception as exc:  # doctor reports every failure, whatever its type
        return CheckResult("per-user-mfa", False, f"{type(exc).__name__}: {exc}", _ms(start))
    if saved is None:
        return CheckResult("per-user-mfa", True, "no report yet: run `waveguard permfa report`", _ms(start))
    return CheckResult("per-user-mfa", True, summary_line(saved), _ms(start))


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def collect(env: Mapping[str, str]) -> list[CheckResult]:
    """Every check doctor runs, in order; checks that need an earlier one are skipped when it failed."""
    settings, first = _settings_check(env)
    if settings is None:
        return [first]
    results = [first, check_config(settings), check_storage(settings), check_graph(settings)]
    by_name = {r.name: r.ok for r in results}
    if by_name["config"] and by_name["graph"]:
        results.append(check_break_glass(settings))
    if by_name["graph"]:
        results.append(check_tenant(settings))
    if by_name["config"] and by_name["graph"] and by_name["storage"]:
        results.append(check_wave_groups(settings))
    if by_name["storage"]:
        results.append(check_per_user_mfa(settings))
    return results


def _print_human(results: list[CheckResult]) -> None:
    print("WaveGuard doctor")
    for r in results:
        mark = "ok  " if r.ok else "FAIL"
        lines = r.detail.splitlines() or [""]
        print(f"  [{mark}] {r.name:<9} {lines[0]}")
        for extra in lines[1:]:
            print(f"                   {extra.strip()}")
        if not r.ok and r.name in HINTS:
            print(f"                   -> {HINTS[r.name]}")
    failed = [r.name for r in results if not r.ok]
    print(f"{len(failed)} problem(s): {', '.join(failed)}" if failed else "All checks passed.")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    results = collect(env)
    if args.json:
        checks = [
            {"name": r.name, "ok": r.ok, "detail": r.detail, "latencyMs": r.latency_ms} for r in results
        ]
        json.dump({"ok": all(r.ok for r in results), "checks": checks}, sys.stdout, indent=2)
        print()
    else:
        _print_human(results)
    return 0 if all(r.ok for r in results) else 1
