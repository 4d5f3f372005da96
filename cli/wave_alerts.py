"""`waveguard waves alerts` and `waveguard waves resolve-alert`: the open alerts that hold waves.

A wave with an open critical alert does not promote (gate ``requireNoOpenCriticalAlerts``).
WaveGuard resolves the alerts it can see the end of (a membership sync within the blast radius
again); an operator resolves the others once they have dealt with them.

Exit codes: 0 done; 1 storage failed; 2 usage or input error (unknown wave, no such open alert).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail, require_wave
from shared.alerting import OpenAlert, list_open_alerts, resolve_open_alert
from shared.config import load_plan_for, load_settings
from shared.config.plan import RolloutPlan
from shared.errors import ConfigError, NotFoundError, WaveGuardError
from shared.state import AsyncStores, AuditEntry, StateStores, build_state


def add_commands(waves: Any) -> None:
    """Register ``alerts`` and ``resolve-alert`` under ``waveguard waves``."""
    alerts = waves.add_parser("alerts", help="the open alerts of each wave (critical ones hold promotion)")
    alerts.add_argument("wave", metavar="WAVE", nargs="?", help="only this wave")
    alerts.add_argument("--json", action="store_true", help="print them as JSON")
    alerts.set_defaults(run=run_alerts)
    resolve = waves.add_parser("resolve-alert", help="resolve an open alert of WAVE by its id or key")
    resolve.add_argument("wave", metavar="WAVE")
    resolve.add_argument("alert", metavar="ALERT", help="the alert's id (alert-...) or key")
    resolve.add_argument("--reason", required=True, help="what was done about it (kept in the audit log)")
    resolve.add_argument("--json", action="store_true", help="print the resolved alert as JSON")
    resolve.set_defaults(run=run_resolve)


def _open(env: Mapping[str, str]) -> tuple[RolloutPlan, StateStores]:
    settings = load_settings(env)
    return load_plan_for(settings), build_state(settings)


def _waves(plan: RolloutPlan, only: str | None) -> list[str]:
    if only is not None:
        require_wave(plan, only)
        return [only]
    return [w.name for w in plan.waves]


def run_alerts(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        plan, stores = _open(env)
        found = {wave: asyncio.run(list_open_alerts(stores.aio.kv, wave)) for wave in _waves(plan, args.wave)}
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves alerts: {exc}", EXIT_FAILED)
    if args.json:
        rows = {wave: [a.to_dict() for a in items] for wave, items in found.items()}
        print(json.dumps({"waves": rows}, indent=2))
        return EXIT_OK
    for wave, items in found.items():
        critical = sum(1 for a in items if a.severity == "critical")
        held = "  (holds promotion)" if critical else ""
        print(f"{wave}: {len(items)} open, {critical} critical{held}")
        for alert in items:
            print(f"  {alert.id}  {alert.severity:<8} {alert.opened_at}  {alert.key}")
            if alert.summary:
                print(f"      {alert.summary}")
    return EXIT_OK


def run_resolve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        plan, stores = _open(env)
        _waves(plan, args.wave)
        resolved = asyncio.run(_resolve(stores.aio, args.wave, args.alert))
        if resolved is None:
            return fail(
                f"wave {args.wave!r} has no open alert with id or key {args.alert!r} "
                f"(see `waveguard waves alerts {args.wave}`)",
                EXIT_USAGE,
            )
        stores.audit.append(
            AuditEntry(
                actor=actor_of(env),
                action="alert.resolve",
                target=args.wave,
                reason=args.reason,
                correlation_id=f"cli-{uuid.uuid4().hex}",
                details={"alertId": resolved.id, "key": resolved.key},
            )
        )
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"waves resolve-alert {args.wave}: {exc}", EXIT_FAILED)
    if args.json:
        outcome = {"wave": args.wave, "resolved": resolved.to_dict(), "reason": args.reason}
        print(json.dumps(outcome, indent=2))
        return EXIT_OK
    print(f"wave {args.wave!r}: resolved {resolved.severity} alert {resolved.id} ({resolved.key})")
    return EXIT_OK


async def _resolve(stores: AsyncStores, wave: str, alert: str) -> OpenAlert | None:
    by_id = await resolve_open_alert(stores.kv, wave, alert_id=alert)
    return by_id if by_id is not None else await resolve_open_alert(stores.kv, wave, key=alert)
