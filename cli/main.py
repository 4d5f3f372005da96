"""Entry point of the `waveguard` console script: global options, sub-commands, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cli import alerts as alerts_cli
from cli import doctor, policies
from cli import permfa as permfa_cli
from cli import poison as poison_cli
from cli import report as report_cli
from cli import silence as silence_cli
from cli import subscriptions as subscriptions_cli
from cli import waves as waves_cli

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem with the command line or its inputs; printed as `error: ...`, exit code 2."""


def read_local_settings(path: Path, *, given_by: str = "--settings") -> dict[str, str]:
    """The `Values` of a local.settings.json file, as the Functions tooling exports them
    (``given_by`` names where the path came from, in errors).

    Raises:
        CliError: the file is missing, not JSON, or its `Values` is not an object of strings.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CliError(f"{given_by}: {path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{given_by}: {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    values = data.get("Values", {}) if isinstance(data, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise CliError(f"{given_by}: {path}: Values: must be an object whose values are strings")
    return {str(k): v for k, v in values.items()}


def build_environ(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    """The environment the command runs with: local settings (``--settings``, else
    ``$WAVEGUARD_SETTINGS``) under the real environment, then flags."""
    env: dict[str, str] = {}
    if args.settings is not None:
        env.update(read_local_settings(args.settings))
    elif base.get("WAVEGUARD_SETTINGS", "").strip():
        path = Path(base["WAVEGUARD_SETTINGS"].strip())
        env.update(read_local_settings(path, given_by="WAVEGUARD_SETTINGS"))
    env.update(base)  # like the Functions host: real environment variables win over local settings
    if args.config is not None:
        env["WAVEGUARD_CONFIG"] = str(args.config)
    return env


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("waveguard")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waveguard",
        description="WaveGuard operator CLI: MFA rollout through Conditional Access, in waves; "
        "the alerts it raises (alerts, silence).",
        epilog="Exit codes: 0 ok, 1 problems found, 2 usage or input error.",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="a local.settings.json whose Values fill in the environment (e.g. local/local.settings.json; "
        "default: $WAVEGUARD_SETTINGS)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the rollout plan (default: $WAVEGUARD_CONFIG)"
    )
    parser.add_argument("--version", action="version", version=f"waveguard {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    alerts_cli.add_parser(sub)
    doctor.add_parser(sub)
    permfa_cli.add_parser(sub)
    policies.add_parser(sub)
    poison_cli.add_parser(sub)
    report_cli.add_parser(sub)
    silence_cli.add_parser(sub)
    subscriptions_cli.add_parser(sub)
    waves_cli.add_parser(sub)
    _mention_global_options(parser)
    return parser


GLOBAL_OPTIONS_NOTE = (
    "Global options --settings FILE and --config FILE work here too, before or after the command "
    "(see `waveguard --help`)."
)


def _mention_global_options(parser: argparse.ArgumentParser) -> None:
    """Every sub-command's help ends with :data:`GLOBAL_OPTIONS_NOTE`: the options are the top
    parser's, so its help alone would list them otherwise."""
    for action in parser._actions:  # argparse keeps its sub-parsers nowhere public
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for command in {id(p): p for p in action.choices.values()}.values():  # aliases share one
            epilog = command.epilog
            command.epilog = f"{epilog} {GLOBAL_OPTIONS_NOTE}" if epilog else GLOBAL_OPTIONS_NOTE
            _mention_global_options(command)


EXIT_BROKEN_PIPE = 141  # as a shell reports a command whose reader went away (128 + SIGPIPE)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    try:
        code = _run(argv, environ)
        sys.stdout.flush()  # a reader that went away is noticed here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `waveguard ... --json | head`: stop quietly, as Unix tools do, with no traceback
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


_GLOBAL_OPTIONS = ("--settings", "--config")


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """``--settings`` and ``--config`` moved in front of the command, so they work anywhere on the
    line (``waveguard doctor --settings local/local.settings.json`` as well as before ``doctor``);
    nothing after ``--`` is touched."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest += argv[index:]
            break
        if arg in _GLOBAL_OPTIONS and index + 1 < len(argv):
            front += [arg, argv[index + 1]]
            index += 2
            continue
        if arg.startswith(tuple(f"{name}=" for name in _GLOBAL_OPTIONS)):
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def _run(argv: Sequence[str] | None, environ: Mapping[str, str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_global_options(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        env = build_environ(args, os.environ if environ is None else environ)
        return int(args.run(args, env))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
