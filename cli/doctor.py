"""`waveguard doctor`: is the configuration usable, are storage and Graph reachable? Says what is wrong."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.health import CheckResult, check_config, check_graph, check_storage

# What to do about a failed check, shown under it.
HINTS = {
    "settings": "fix the variables named above (app settings in Azure, local/local.settings.json locally)",
    "config": "fix the plan file at the paths named above; config/waveguard.yaml is a documented example",
    "storage": "is Azurite running (`make run`)? In Azure: check AzureWebJobsStorage and the identity's role",
    "graph": "is the Graph emulator running (`make run`)? In Azure: check GRAPH_BASE_URL and outbound access",
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


def collect(env: Mapping[str, str]) -> list[CheckResult]:
    """Every check doctor runs, in order; later checks are skipped when settings are invalid."""
    settings, first = _settings_check(env)
    if settings is None:
        return [first]
    return [first, check_config(settings), check_storage(settings), check_graph(settings)]


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
