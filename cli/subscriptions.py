"""`waveguard subscriptions list|sync [--json]`: the Graph change notifications on watched groups.

`list` shows each watched group (its roles: exclusion, wave:<name>, selector:<name>, policy), its
subscription, when that expires and when Graph last notified a change; groups still recorded but no
longer watched are shown as such. Nothing is written.

`sync` does what the subscription timer does: creates a subscription for each watched group that has
none (Graph validates the notification URL first), renews those with less than 7 days left, creates
again those Graph no longer has, deletes those on groups no longer watched. One line per group as it
goes. While another sync holds the tenant's lock (the timer's, right after the app starts), it waits
for it, up to ``--wait`` seconds (60 by default; 0: fail at once), saying so on stderr.

Exit codes: 0 done; 1 a group's subscription failed (Graph's reason is shown) or Graph/storage failed;
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from shared.config import load_plan_for, load_settings
from shared.errors import ConfigError, SafetyViolationError, WaveGuardError
from shared.group_changes.subscriptions import (
    SubscriptionDeps,
    SubscriptionStatus,
    list_subscriptions,
    sync_subscriptions_waiting,
)
from shared.state import build_state


def add_parser(sub: Any) -> None:
    """Register ``waveguard subscriptions`` and its commands."""
    cmd = sub.add_parser("subscriptions", help="Graph change notifications on watched groups: list, sync")
    verbs = cmd.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="each watched group, its subscription, expiry, last notification")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(run=run_list)
    sync = verbs.add_parser("sync", help="create, renew and drop subscriptions now (as the timer does)")
    sync.add_argument("--json", action="store_true", help="print the outcome as JSON")
    sync.add_argument(
        "--wait",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another sync that is running (default 60; 0: fail at once)",
    )
    sync.set_defaults(run=run_sync)


def _deps(env: Mapping[str, str]) -> SubscriptionDeps:
    from shared.graph import build_graph_client

    settings = load_settings(env)
    return SubscriptionDeps(load_plan_for(settings), build_graph_client(settings), build_state(settings).aio)


def _line(status: SubscriptionStatus) -> str:
    name = status.display_name or "-"
    roles = ",".join(status.roles) or "-"
    sub = status.subscription_id or "-"
    expires = status.expires_at or "-"
    last = status.last_notification_at or "never"
    action = f"  [{status.action}]" if status.action else ""
    watched = "" if status.watched else "  (no longer watched)"
    line = f"{status.group_id}  {name:<36} {roles:<28} sub {sub}  expires {expires}  last notified {last}"
    detail = f"\n    {status.detail}" if status.detail and status.action in ("failed", "unconfigured") else ""
    return f"{line}{action}{watched}{detail}"


def run_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        deps = _deps(env)
        rows, watched = asyncio.run(list_subscriptions(deps))
    except (ConfigError, SafetyViolationError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"subscriptions list: {exc}", EXIT_FAILED)
    url = deps.plan.subscriptions.notification_url
    if args.json:
        body = {
            "notificationUrl": _redacted(url),
            "groups": [r.to_json() for r in rows],
            "missing": list(watched.missing),
        }
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"notification URL: {_redacted(url) or 'not set (subscriptions.notificationUrl)'}")
    for row in rows:
        print(_line(row))
    for missing in watched.missing:
        print(f"not watched (group not found): {missing}")
    return EXIT_OK


def run_sync(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    def progress(status: SubscriptionStatus) -> None:
        if not args.json:
            print(_line(status), flush=True)

    try:
        deps = _deps(env)
        results = asyncio.run(
            sync_subscriptions_waiting(
                deps,
                correlation_id=f"cli-{uuid.uuid4().hex}",
                wait=args.wait,
                progress=progress,
                on_wait=lambda: print(
                    f"another subscription sync is running; waiting for it (up to {args.wait:g} s) ...",
                    file=sys.stderr,
                    flush=True,
                ),
            )
        )
    except (ConfigError, SafetyViolationError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"subscriptions sync: {exc}", EXIT_FAILED)
    failed = [r for r in results if r.action == "failed"]
    if args.json:
        print(json.dumps({"groups": [r.to_json() for r in results], "failed": len(failed)}, indent=2))
    else:
        counts: dict[str, int] = {}
        for r in results:
            counts[str(r.action)] = counts.get(str(r.action), 0) + 1
        print("summary: " + ", ".join(f"{n} {action}" for action, n in sorted(counts.items())))
    return EXIT_FAILED if failed else EXIT_OK


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0 to 3600 seconds, got {text}")
    return value


def _redacted(url: str | None) -> str | None:
    # The notification URL carries the function key (?code=...): never print it.
    return url.split("?", 1)[0] + ("?code=***" if "?" in url else "") if url else None
