"""`waveguard poison list|show|replay|drop`: the messages that failed `maxDequeueCount` times.

Each was archived by the poison trigger (with its last error) and paged as `PoisonMessage`.
`replay` puts the original body back on its source queue, unchanged (the envelope id, and so the
idempotency of its effects, stays); `drop` deletes it for good. Both are audited.

Exit codes: 0 done; 1 storage failed; 2 usage or input error (unknown id or queue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail
from shared.config import load_settings
from shared.errors import ConfigError, InvalidPayloadError, NotFoundError, WaveGuardError
from shared.names import ALL_QUEUES, poison
from shared.poison import PoisonRecord, drop_poison, list_poison, replay_poison
from shared.queues import AsyncQueueSender, get_queue_sender
from shared.state import StateStores, build_state

_QUEUES = (*ALL_QUEUES, *(poison(q) for q in ALL_QUEUES))


def add_parser(sub: Any) -> None:
    """Register ``waveguard poison`` and its commands."""
    cmd = sub.add_parser("poison", help="messages that failed too often: list, show, replay, drop")
    verbs = cmd.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="every archived poison message")
    listing.add_argument("--queue", choices=_QUEUES, help="only this queue (or its poison queue)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_list)
    show = verbs.add_parser("show", help="one archived message, whole")
    show.add_argument(
        "id", metavar="ID", help="the record id from `poison list` (<queue>-poison:<message id>)"
    )
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=run_show)
    for verb, helptext, run in (
        ("replay", "put the original message back on its queue", run_replay),
        ("drop", "delete the archived message for good", run_drop),
    ):
        parser = verbs.add_parser(verb, help=helptext)
        parser.add_argument("id", metavar="ID")
        parser.add_argument("--reason", required=True, help="why (kept in the audit log)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(run=run)


def _stores(env: Mapping[str, str]) -> StateStores:
    return build_state(load_settings(env))


def _row(record: PoisonRecord) -> str:
    error = (record.last_error or "-").replace("\n", " ")[:70]
    kind = record.envelope_type or "?"
    return f"{record.id:<60} {record.status:<8} {record.dequeue_count:>3}x {kind:<22} {error}"


def run_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        records = asyncio.run(list_poison(_stores(env).aio.kv, queue=args.queue))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"poison list: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    elif not records:
        print("no poison messages")
    else:
        print(f"{'ID':<60} {'STATUS':<8} {'TRIES':>4} {'TYPE':<22} LAST ERROR")
        for record in records:
            print(_row(record))
    return EXIT_OK


def run_show(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        found = [r for r in asyncio.run(list_poison(_stores(env).aio.kv)) if r.id == args.id]
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"poison show: {exc}", EXIT_FAILED)
    if not found:
        return fail(f"id: no archived poison message {args.id!r} (see `waveguard poison list`)", EXIT_USAGE)
    print(json.dumps(found[0].to_dict(), indent=2))
    return EXIT_OK


def _change(args: argparse.Namespace, env: Mapping[str, str], verb: str) -> int:
    try:
        settings = load_settings(env)
        stores = build_state(settings)
        actor = actor_of(env)
        if verb == "replay":
            sender = AsyncQueueSender(get_queue_sender(settings))
            record = asyncio.run(replay_poison(stores.aio, sender, args.id, actor=actor, reason=args.reason))
        else:
            record = asyncio.run(drop_poison(stores.aio, args.id, actor=actor, reason=args.reason))
    except (ConfigError, NotFoundError, InvalidPayloadError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"poison {verb}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps({"action": verb, **record.to_dict()}, indent=2))
    elif verb == "replay":
        print(f"replayed {record.id} onto {record.source_queue} (envelope {record.envelope_id or '?'})")
    else:
        print(f"dropped {record.id}")
    return EXIT_OK


def run_replay(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _change(args, env, "replay")


def run_drop(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _change(args, env, "drop")
