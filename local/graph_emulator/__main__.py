"""``python -m local.graph_emulator``: serve the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from local.graph_emulator.limits import RateLimitConfig
from local.graph_emulator.permissions import resolve_permissions
from local.graph_emulator.server import start_emulator
from local.graph_emulator.throttle import GRAPH_WRITE_CAPACITY, GRAPH_WRITE_SECONDS, WriteBudget


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.graph_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7072, help="0 picks a free port")
    parser.add_argument("--seed", choices=("demo", "empty"), default="demo")
    parser.add_argument("--random-seed", type=int, default=42, help="makes the demo tenant (and its ids)")
    parser.add_argument(
        "--users",
        type=int,
        default=0,
        metavar="N",
        help="N more users over the demo departments (a tenant at scale; up to 500,000)",
    )
    parser.add_argument(
        "--write-capacity", type=int, default=None, help=f"writes in the bucket ({GRAPH_WRITE_CAPACITY})"
    )
    parser.add_argument(
        "--write-per-seconds",
        type=float,
        default=None,
        help=f"seconds to refill the bucket ({GRAPH_WRITE_SECONDS:.0f})",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="shrink time: 10 means 300 writes per 15 s, provisioning lag and rate-limit windows / 10",
    )
    parser.add_argument("--retry-after-format", choices=("integer", "decimal"), default="integer")
    parser.add_argument(
        "--snapshot", default=None, help="load the tenant from a snapshot file instead of a seed"
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="NAME=on|off",
        help="turn a per-API limit on or off: conditionalAccess (off), registrationDetails (on)",
    )
    parser.add_argument(
        "--permissions",
        default="infra",
        metavar="infra|all|A,B,C",
        help="the application permissions the app holds: infra (a default deployment: "
        "infra/graph-permissions.json with infra/main.bicep's defaults), all (every entry) or a list",
    )
    parser.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="with --permissions infra: deploy with this infra/main.bicep switch, "
        "e.g. enableDestructiveResponses=true",
    )
    return parser.parse_args(argv)


def write_budget(args: argparse.Namespace) -> WriteBudget:
    """The budget from the flags; --time-scale excludes the two explicit flags."""
    if args.time_scale is not None:
        if args.write_capacity is not None or args.write_per_seconds is not None:
            raise ValueError("--time-scale cannot be combined with --write-capacity/--write-per-seconds")
        return WriteBudget.time_scaled(args.time_scale, retry_after_format=args.retry_after_format)
    return WriteBudget(
        capacity=args.write_capacity if args.write_capacity is not None else GRAPH_WRITE_CAPACITY,
        per_seconds=args.write_per_seconds if args.write_per_seconds is not None else GRAPH_WRITE_SECONDS,
        retry_after_format=args.retry_after_format,
    )


def rate_limits(args: argparse.Namespace) -> RateLimitConfig:
    """The per-API limits from ``--rate-limit NAME=on|off`` flags.

    Raises:
        ValueError: a flag without '=', an unknown name or a value other than on/off.
    """
    settings: dict[str, bool] = {}
    for flag in args.rate_limit:
        name, sep, value = str(flag).partition("=")
        if not sep or value not in ("on", "off"):
            raise ValueError(f"--rate-limit expects NAME=on|off, got {flag!r}")
        settings[name] = value == "on"
    return RateLimitConfig.from_json(settings)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        handle = start_emulator(
            args.port,
            args.seed,
            host=args.host,
            random_seed=args.random_seed,
            write_budget=write_budget(args),
            snapshot=args.snapshot,
            time_scale=args.time_scale if args.time_scale is not None else 1.0,
            rate_limits=rate_limits(args),
            extra_users=args.users,
            permissions=resolve_permissions(args.permissions, args.grant),
        )
    except (ValueError, OSError) as exc:
        print(f"graph emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"Graph emulator listening on {handle.base_url}", flush=True)
    print(f"Application permissions: {', '.join(sorted(handle.emulator.config.permissions))}", flush=True)
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
