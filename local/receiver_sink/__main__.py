"""``python -m local.receiver_sink``: serve the receiver sink until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from local.receiver_sink.limits import RateRule, parse_limit
from local.receiver_sink.server import MAX_BODY_BYTES, start_sink


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.receiver_sink",
        description="A local PagerDuty / Teams / Slack / webhook receiver that records every delivery.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7073, help="0 picks a free port")
    parser.add_argument(
        "--webhook-secret",
        action="append",
        default=[],
        metavar="whsec_...",
        help="verify Standard Webhooks signatures on /webhook with this secret (repeatable)",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="KIND=N/SECONDS|off",
        help="override a rate rule, e.g. slack=3/1 or webhook=off "
        "(defaults: pagerduty=120/60, teams=4/1, slack=1/1, webhook=off)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--quiet", action="store_true", help="do not print one line per delivery")
    return parser.parse_args(argv)


def describe(event: dict[str, Any]) -> str:
    """One line per delivery, for the log."""
    body = event.get("body")
    detail = ""
    if event["kind"] == "pagerduty" and isinstance(body, dict):
        detail = f" {body.get('event_action')} dedup_key={body.get('dedup_key')}"
    elif isinstance(body, dict) and isinstance(body.get("text") or body.get("title"), str):
        detail = f" {str(body.get('text') or body.get('title'))[:80]!r}"
    errors = event.get("errors")
    problems = f" errors={errors}" if errors else ""
    return (
        f"#{event['seq']} {event['kind']} {event['path']} -> {event['status']} {event['outcome']}"
        f"{detail}{problems}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        limits: dict[str, RateRule | None] = dict(parse_limit(text) for text in args.limit)
        handle = start_sink(
            args.port,
            host=args.host,
            webhook_secrets=args.webhook_secret,
            limits=limits,
            max_body_bytes=args.max_body_bytes,
            on_event=None if args.quiet else lambda event: print(describe(event), flush=True),
        )
    except (ValueError, OSError) as exc:
        print(f"receiver sink: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"Receiver sink listening on {handle.url} (events: {handle.events_url})", flush=True)
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
