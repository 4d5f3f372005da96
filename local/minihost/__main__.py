"""Run a function app on one machine, like `func start`.

python -m local.minihost --app function_app:app --app-dir . --port 7071 --settings local/local.settings.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from local.minihost.errors import MiniHostError
from local.minihost.host import MiniHost, create_host, run_until_signalled
from local.minihost.logs import configure_logging


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.minihost", description=__doc__)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--app-dir", default=".", help="directory holding the app module (working directory)")
    parser.add_argument(
        "--port", type=int, default=None, help="HTTP port (default Host.LocalHttpPort or 7071)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address")
    parser.add_argument("--settings", default=None, help="local.settings.json (default: the app directory's)")
    parser.add_argument("--host-json", default=None, help="host.json (default: the app directory's)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def _print_functions(host: MiniHost) -> None:
    print(host.describe(), flush=True)
    print(f"\nHost listening on {host.base_url} (Ctrl-C to stop)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        host = create_host(
            args.app,
            app_dir=args.app_dir,
            host_json=args.host_json,
            settings_file=args.settings,
            http_port=args.port,
            http_host=args.host,
        )
        run_until_signalled(host, on_ready=_print_functions)
    except MiniHostError as exc:
        print(f"minihost: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
