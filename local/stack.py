"""`make run`: the local stack (Azurite, Graph emulator, receiver sink, mini-host), a demo, then serve until
Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from local.azurite import AZURITE_BIN, KEEP_ALIVE_FLAGS, connection_string
from local.ports import port_open

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
SETTINGS_FILE = ROOT / "local" / "local.settings.json"
HEALTH_TIMEOUT = 90.0


@dataclass(frozen=True)
class Ports:
    """Where each service of the stack listens (the defaults are the ones Azure tooling uses)."""

    host: int = 7071
    graph: int = 7072
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    # the receiver sink (local/receiver_sink): PagerDuty, Teams, Slack and webhook deliveries land here
    sink: int = 7073

    def azurite(self) -> dict[str, int]:
        return {"blob": self.blob, "queue": self.queue, "table": self.table}


@dataclass
class Child:
    """One child process of the stack, in its own process group so Ctrl-C reaches it through us."""

    name: str
    process: subprocess.Popen[bytes]
    ports: tuple[int, ...]

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            print(f"  {self.name} did not stop within {grace:.0f} s; killing it", flush=True)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


class StackError(Exception):
    """The local stack could not start; the message says what to do."""


def _preflight(ports: Ports) -> None:
    if not AZURITE_BIN.exists():
        raise StackError(f"Azurite is not installed ({AZURITE_BIN} missing): run `make install`.")
    by_port: dict[int, list[str]] = {}
    for name, port in vars(ports).items():
        by_port.setdefault(port, []).append(f"--{name}-port")
    shared = [f"{' and '.join(names)} are both {port}" for port, names in by_port.items() if len(names) > 1]
    if shared:
        raise StackError("each service needs a port of its own: " + "; ".join(shared) + ".")
    busy = [
        f"{name} port {port}"
        for name, port in [
            ("mini-host", ports.host),
            ("Graph emulator", ports.graph),
            ("receiver sink", ports.sink),
        ]
        + [(f"Azurite {k}", p) for k, p in ports.azurite().items()]
        if port_open(port)
    ]
    if busy:
        raise StackError(
            "these ports are already in use: "
            + ", ".join(busy)
            + ". Is another `make run` still running? Stop it (Ctrl-C) or free the ports."
        )


def _stream(prefix: str, process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    for raw in iter(process.stdout.readline, b""):
        sys.stdout.write(f"{prefix} {raw.decode(errors='replace')}")
        sys.stdout.flush()


def _spawn(
    name: str, cmd: Sequence[str], *, ports: tuple[int, ...], log: Path | None, env: dict[str, str]
) -> Child:
    STACK_DIR.mkdir(exist_ok=True)
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    else:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        threading.Thread(target=_stream, args=(f"[{name}]", proc), daemon=True).start()
    return Child(name, proc, ports)


def _wait_ports(child: Child, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while not all(port_open(p) for p in child.ports):
        if child.process.poll() is not None:
            hint = f"; see {log.relative_to(ROOT)}" if log else ""
            raise StackError(f"{child.name} exited with code {child.process.returncode} while starting{hint}")
        if time.monotonic() > deadline:
            raise StackError(f"{child.name} did not listen on {child.ports} within {timeout:.0f} s")
        time.sleep(0.1)


def wait_healthy(url: str, timeout: float = HEALTH_TIMEOUT) -> dict[str, object]:
    """Poll the health endpoint until it answers 200; return its JSON.

    Raises:
        StackError: not healthy within ``timeout``; the message carries the last answer.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:500].decode(errors='replace')}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise StackError(f"{url} was not healthy within {timeout:.0f} s; last answer: {last}")


def stack_environ(ports: Ports) -> dict[str, str]:
    """The environment the app sees in this stack: local settings, the real environment, these ports."""
    from cli.main import read_local_settings

    local = read_local_settings(SETTINGS_FILE)
    key = json.loads(SETTINGS_FILE.read_text("utf-8")).get("FunctionKeys", {}).get("default", "")
    # Graph (the emulator) calls the app back here: the notification ingress, key in the query.
    notifications = f"http://127.0.0.1:{ports.host}/api/graph/notifications?code={key}"
    sink = f"http://127.0.0.1:{ports.sink}"
    return {
        **local,
        "WAVEGUARD_NOTIFICATION_URL": notifications,
        # the plan's receivers deliver to the sink (the real environment may point them elsewhere)
        "PAGERDUTY_URL": f"{sink}/v2/enqueue",
        "TEAMS_WEBHOOK_URL": f"{sink}/teams",
        **os.environ,
        "AzureWebJobsStorage": connection_string(
            blob_port=ports.blob, queue_port=ports.queue, table_port=ports.table
        ),
        "GRAPH_BASE_URL": f"http://127.0.0.1:{ports.graph}/v1.0",
        "PYTHONUNBUFFERED": "1",
    }


def start_stack(ports: Ports) -> list[Child]:
    """Start Azurite, the Graph emulator, the receiver sink and the mini-host; return them in start order."""
    _preflight(ports)
    env = stack_environ(ports)
    py = sys.executable
    children: list[Child] = []
    try:
        azurite_log = STACK_DIR / "azurite.log"
        az_cmd = [
            str(AZURITE_BIN),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--inMemoryPersistence",
            *KEEP_ALIVE_FLAGS,
        ]
        for svc, port in ports.azurite().items():
            az_cmd += [f"--{svc}Host", "127.0.0.1", f"--{svc}Port", str(port)]
        children.append(
            _spawn("azurite", az_cmd, ports=tuple(ports.azurite().values()), log=azurite_log, env=env)
        )
        emu_log = STACK_DIR / "graph-emulator.log"
        children.append(
            _spawn(
                "graph",
                [py, "-m", "local.graph_emulator", "--port", str(ports.graph), "--seed", "demo"],
                ports=(ports.graph,),
                log=emu_log,
                env=env,
            )
        )
        sink_log = STACK_DIR / "receiver-sink.log"
        children.append(
            _spawn(
                "sink",
                [py, "-m", "local.receiver_sink", "--port", str(ports.sink)],
                ports=(ports.sink,),
                log=sink_log,
                env=env,
            )
        )
        _wait_ports(children[0], 60, azurite_log)
        _wait_ports(children[1], 60, emu_log)
        _wait_ports(children[2], 60, sink_log)
        children.append(
            _spawn(
                "host",
                [
                    py,
                    "-m",
                    "local.minihost",
                    "--app",
                    "function_app:app",
                    "--app-dir",
                    str(ROOT),
                    "--port",
                    str(ports.host),
                    "--settings",
                    str(SETTINGS_FILE),
                ],
                ports=(ports.host,),
                log=None,
                env=env,
            )
        )
        _wait_ports(children[3], 60, None)
    except BaseException:
        stop_stack(children)
        raise
    return children


def stop_stack(children: list[Child]) -> None:
    """Stop every child, newest first, and report any port still open."""
    for child in reversed(children):
        child.stop()
    still = [p for c in children for p in c.ports if port_open(p)]
    if still:
        print(f"warning: ports still open after stopping: {still}", file=sys.stderr)


def cli_settings_file(ports: Ports) -> Path:
    """The settings file the operator CLI should use against this stack: ``local/local.settings.json``
    on the default ports; on others, a copy under ``.stack/`` whose storage and Graph URLs (and the
    receivers' sink) point at these ports."""
    if ports == Ports():
        return SETTINGS_FILE
    data = json.loads(SETTINGS_FILE.read_text("utf-8"))
    environ = stack_environ(ports)
    names = ("AzureWebJobsStorage", "GRAPH_BASE_URL", "PAGERDUTY_URL", "TEAMS_WEBHOOK_URL")
    data["Values"] = {**data.get("Values", {}), **{name: environ[name] for name in names}}
    STACK_DIR.mkdir(exist_ok=True)
    moved = STACK_DIR / "local.settings.json"
    moved.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    return moved


def cli_command(ports: Ports) -> str:
    """How to run the operator CLI against this stack: ``.venv/bin/waveguard --settings FILE``
    (:func:`cli_settings_file`), the start of every CLI hint the banner and the demo print."""
    return f".venv/bin/waveguard --settings {cli_settings_file(ports).relative_to(ROOT)}"


def _print_endpoints(ports: Ports) -> None:
    graph = f"http://127.0.0.1:{ports.graph}"
    sink = f"http://127.0.0.1:{ports.sink}"
    print(
        "\nWaveGuard local stack is running:\n"
        f"  Functions (mini-host)  http://127.0.0.1:{ports.host}/api   health: /api/health\n"
        f"  Graph emulator         {graph}/v1.0   admin: {graph}/_emulator\n"
        f"  Azurite                blob {ports.blob}, queue {ports.queue}, table {ports.table} (in memory)\n"
        f"  Receiver sink          {sink}   events: {sink}/_sink/events   incidents: /_sink/incidents\n"
        f"  Logs                   {STACK_DIR.relative_to(ROOT)}/azurite.log, "
        f"{STACK_DIR.relative_to(ROOT)}/graph-emulator.log, "
        f"{STACK_DIR.relative_to(ROOT)}/receiver-sink.log; the host logs here\n"
        f"  Operator CLI           {cli_command(ports)} doctor\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def run(*, demo: bool, ports: Ports) -> int:
    """Start the stack, optionally show the demo, serve until SIGINT/SIGTERM, stop everything."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print("Starting Azurite, the Graph emulator, the receiver sink and the mini-host ...", flush=True)
    try:
        children = start_stack(ports)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    code = 0
    try:
        health = wait_healthy(f"http://127.0.0.1:{ports.host}/api/health")
        print(f"Health: {health.get('status')}", flush=True)
        if demo and not stop.is_set():
            from local.demo import run_demo

            run_demo(
                host_url=f"http://127.0.0.1:{ports.host}",
                environ=stack_environ(ports),
                cli=cli_command(ports),
            )
        _print_endpoints(ports)
        while not stop.is_set() and all(c.process.poll() is None for c in children):
            stop.wait(0.5)
        dead = [c.name for c in children if c.process.poll() is not None]
        if dead and not stop.is_set():
            print(f"error: {', '.join(dead)} stopped unexpectedly; shutting the stack down", file=sys.stderr)
            code = 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("\nStopping the stack ...", flush=True)
        stop_stack(children)
        left = [p for p in (ports.host, ports.graph, ports.sink, *ports.azurite().values()) if port_open(p)]
        print(f"Stopped; still listening: {left}" if left else "Stopped: every port is closed.", flush=True)
    return code


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1-65535)")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="start the stack, show the demo, serve until Ctrl-C")
    run_p.add_argument("--no-demo", action="store_true", help="start the stack without the demo (DEMO=0)")
    for field_name, default in vars(Ports()).items():
        run_p.add_argument(
            f"--{field_name}-port",
            type=_port,
            default=default,
            dest=field_name,
            help=f"the {field_name} port (default {default}; make run {field_name.upper()}_PORT=N)",
        )
    args = parser.parse_args(argv)
    ports = Ports(**{name: getattr(args, name) for name in vars(Ports())})
    return run(demo=not args.no_demo, ports=ports)


if __name__ == "__main__":
    sys.exit(main())
