"""The mini-host as a child process (the fault campaign's, which SIGKILLs it; a benchmark's extra
instances). Prints ``ready <url>`` once its functions are indexed and its pollers started.

python -m bench.fault_host --port P --host-json H --lease S   (settings come from the environment)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from local.minihost.host import create_host, run_until_signalled
from local.minihost.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_host", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-json", required=True)
    parser.add_argument("--lease", type=float, required=True, help="queue message lease in seconds")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    host = create_host(
        "function_app:app",
        app_dir=ROOT,
        host_json=args.host_json,
        http_port=args.port,
        message_lease=args.lease,
        grace_period=1.0,
    )
    run_until_signalled(host, on_ready=lambda h: print(f"ready {h.base_url}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
