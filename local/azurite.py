"""Start and stop Azurite (queues and tables) from the npm package installed under local/node."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from local.ports import free_ports, port_open

NODE_DIR = Path(__file__).resolve().parent / "node"
AZURITE_BIN = NODE_DIR / "node_modules" / ".bin" / "azurite"
# Node's default keeps an idle connection 5 s, so a client reusing one just as Azurite closed it
# got "Remote end closed connection without response" (a write it cannot safely retry). Azure's
# front ends keep idle connections for minutes; so does the emulator, with these.
KEEP_ALIVE_SECONDS = 300
KEEP_ALIVE_FLAGS = tuple(
    flag
    for service in ("blob", "queue", "table")
    for flag in (f"--{service}KeepAliveTimeout", str(KEEP_ALIVE_SECONDS))
)
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(*, blob_port: int, queue_port: int, table_port: int) -> str:
    """The storage connection string for an Azurite listening on these ports."""
    base = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint={base}:{queue_port}/{ACCOUNT};"
        f"TableEndpoint={base}:{table_port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    """A running Azurite child process."""

    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes] | None = None
    workdir: str = field(default="")

    @property
    def connection_string(self) -> str:
        return connection_string(
            blob_port=self.blob_port, queue_port=self.queue_port, table_port=self.table_port
        )

    def stop(self) -> None:
        """Terminate Azurite and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_azurite(
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    in_memory: bool = True,
    location: str | None = None,
    log_file: str | None = None,
    timeout: float = 60.0,
) -> Azurite:
    """Start Azurite on the given (or free) ports and wait until every service listens.

    Raises:
        FileNotFoundError: Azurite is not installed under local/node (run `make install`).
        TimeoutError: Azurite did not start listening in time.
    """
    if not AZURITE_BIN.exists():
        raise FileNotFoundError(
            f"Azurite not found at {AZURITE_BIN}; install it with `make install` "
            "(npm install --prefix local/node azurite)"
        )
    spare = free_ports(3)
    ports = [blob_port or spare[0], queue_port or spare[1], table_port or spare[2]]
    workdir = location or ("" if in_memory else tempfile.mkdtemp(prefix="azurite-"))
    cmd = [
        str(AZURITE_BIN),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        *KEEP_ALIVE_FLAGS,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports[0]),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports[1]),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports[2]),
    ]
    # Azurite refuses --location together with --inMemoryPersistence; --location still
    # keeps its debug log and extent files out of the working directory when persisting.
    cmd += ["--inMemoryPersistence"] if in_memory else ["--location", workdir]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    az = Azurite(ports[0], ports[1], ports[2], proc, workdir if location is None else "")
    deadline = time.monotonic() + timeout
    while not all(port_open(p) for p in ports):
        if proc.poll() is not None:
            raise RuntimeError(
                f"Azurite exited with code {proc.returncode} before listening; command: {' '.join(cmd)}"
            )
        if time.monotonic() > deadline:
            az.stop()
            raise TimeoutError(f"Azurite did not listen on {ports} within {timeout:.0f} s")
        time.sleep(0.05)
    return az
