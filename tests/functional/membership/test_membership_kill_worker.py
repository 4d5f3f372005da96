"""A real SIGKILL of the mini-host mid-sync: the next host resumes the chunk without rewriting anyone.

The app runs as ``python -m local.minihost`` subprocesses against the session's Azurite and a Graph
emulator of its own (started in-process so the test sees every group write with its members).
The emulator's write budget (10 writes per second, integer Retry-After) keeps chunks mid-flight:
a chunk of 400 members is 20 PATCHes of 20 and takes about two seconds.

Production waits 10 minutes twice after a crash: the worker's ``chunk_claim_expiry`` and the
host's message lease. Neither can be set from outside the process, so once the first host is
dead the test stands in for those 10 minutes: it back-dates the dead worker's claim by the
worker's own expiry (plus a minute) and re-delivers the tick (``start_wave_sync`` with the same
correlation id re-enqueues the chunks not done), as the returning message would.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from local.graph_emulator import EmulatorHandle, WriteBudget, start_emulator
from local.ports import free_port
from shared.config import load_settings
from shared.names import WAVE_WORK
from shared.rollout.membership import SyncRun, read_sync_run, start_wave_sync
from shared.rollout.membership.work import CHUNK_MEMBERS, NAMESPACE
from shared.services import build_services
from tests import waiting
from tests.aio import aio
from tests.conftest import PLAN_SECRETS
from tests.functional.membership.claims import backdate_claim, read_claim

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]
WAVE = "kill-test"
GROUP_NAME = "WaveGuard - Kill test"
DEPARTMENT = "Killtest"
PEOPLE = 1200  # 3 chunks of 400
MEMBERS_PER_PATCH = 20


@dataclass(frozen=True)
class Write:
    """One PATCH /groups/{id} (a $batch item) as the emulator answered it."""

    host: int  # 1: the host that gets killed, 2: the one that resumes
    status: int
    members: tuple[str, ...]


class GroupWrites:
    """Every write to one group, with its members, taken from the emulator's request log hook."""

    def __init__(self, handle: EmulatorHandle, group_id: str) -> None:
        self.group_id = group_id
        self.host = 1
        self.writes: list[Write] = []
        self.member_reads: list[int] = []  # which host read the group's members
        self._lock = threading.Lock()
        log = handle.emulator.requests
        original = log.record

        def record(request: Any, status: int, **kwargs: Any) -> None:
            original(request, status, **kwargs)
            path = request.path.rstrip("/")
            if path.startswith(f"/v1.0/groups/{group_id}/members") and request.method == "GET":
                with self._lock:
                    self.member_reads.append(self.host)
            if path != f"/v1.0/groups/{group_id}" and not path.startswith(f"/v1.0/groups/{group_id}/"):
                return
            if request.method == "GET":
                return
            try:
                binds = json.loads(request.body or b"{}").get("members@odata.bind", [])
            except ValueError:
                binds = []
            members = tuple(str(b).rsplit("/", 1)[-1] for b in binds)
            with self._lock:
                self.writes.append(Write(self.host, status, members if request.method == "PATCH" else ("?",)))

        log.record = record  # type: ignore[method-assign]

    def snapshot(self) -> list[Write]:
        with self._lock:
            return list(self.writes)

    def added_by(self, host: int | None = None) -> list[str]:
        """Members of every successful add (a member twice if it was added twice)."""
        return [m for w in self.snapshot() if w.status == 204 and host in (None, w.host) for m in w.members]


class Host:
    """``python -m local.minihost`` in a subprocess, output to a file."""

    def __init__(self, name: str, env: dict[str, str], host_json: Path, logs: Path) -> None:
        self.log_path = logs / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "local.minihost",
            "--app",
            "function_app:app",
            "--app-dir",
            str(ROOT),
            "--port",
            str(free_port()),
            "--settings",
            str(ROOT / "local" / "local.settings.json"),
            "--host-json",
            str(host_json),
        ]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text("utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for[T](
    what: str, probe: Callable[[], T], *, timeout: float, host: Host | None = None, interval: float = 0.01
) -> T:
    def checked() -> T:
        if host is not None and host.process.poll() is not None:
            raise AssertionError(
                f"the host exited ({host.process.returncode}) while waiting for {what}:\n{host.tail()}"
            )
        return probe()

    try:
        return waiting.wait_for(what, checked, timeout=timeout, interval=interval)
    except AssertionError as exc:
        detail = f"\n{host.tail()}" if host is not None and "exited" not in str(exc) else ""
        raise AssertionError(f"{exc}{detail}") from None


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    # 10 writes per second, and a whole-second Retry-After: the writer waits a second per 429, so a
    # chunk's 20 PATCHes go in over ~2 s and the group is often part way through a chunk.
    handle = start_emulator(port=0, seed="demo", write_budget=WriteBudget(capacity=10, per_seconds=1.0))
    try:
        yield handle
    finally:
        handle.stop()


def _empty_wave_work(storage: str) -> None:
    for name in (WAVE_WORK, f"{WAVE_WORK}-poison"):
        queue = QueueClient.from_connection_string(storage, name)
        try:
            queue.create_queue()
        except ResourceExistsError:
            queue.clear_messages()  # leased (invisible) messages included


def _write_plan(tmp: Path) -> Path:
    plan = copy.deepcopy(yaml.safe_load((ROOT / "config" / "waveguard.yaml").read_text("utf-8")))
    wave = {
        "name": WAVE,
        "group": {"displayName": GROUP_NAME},
        "blastRadius": 5000,
        "selectors": {"departments": [DEPARTMENT]},
    }
    # Just before the catch-all: the wave timer (if a quarter hour strikes) waits on the previous
    # wave and never starts a run of its own for this wave.
    waves = plan["waves"]
    waves.insert(next(i for i, w in enumerate(waves) if w.get("catchAll")), wave)
    path = tmp / "waveguard.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), "utf-8")
    return path


def _host_json(tmp: Path) -> Path:
    host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
    # One chunk at a time (so exactly one is in flight at the kill); failed messages back in 1 s.
    host_json["extensions"]["queues"].update(
        batchSize=1, newBatchThreshold=0, visibilityTimeout="00:00:01", maxPollingInterval="00:00:00.5"
    )
    path = tmp / "host.json"
    path.write_text(json.dumps(host_json), "utf-8")
    return path


def test_a_sigkilled_worker_mid_sync_is_resumed_by_the_next_host_without_writing_anyone_twice(
    emulator: EmulatorHandle, storage_connection_string: str, tmp_path: Path
) -> None:
    started_at = time.monotonic()
    storage = storage_connection_string
    _empty_wave_work(storage)
    # GIVEN 1,200 people selected by the wave and its empty group, on an emulator that throttles
    http = httpx.Client(timeout=30)
    admin = emulator.admin_url
    people = [
        {
            "userPrincipalName": f"kill{i:05d}@contoso.com",
            "displayName": f"Kill {i}",
            "department": DEPARTMENT,
            "country": "GB",
        }
        for i in range(PEOPLE)
    ]
    wanted = {u["id"] for u in http.post(f"{admin}/users", json=people).raise_for_status().json()["value"]}
    group_id = http.post(f"{admin}/groups", json={"displayName": GROUP_NAME}).raise_for_status().json()["id"]
    log = GroupWrites(emulator, group_id)
    environ = {
        "AzureWebJobsStorage": storage,
        "GRAPH_BASE_URL": emulator.base_url,
        "WAVEGUARD_CONFIG": str(_write_plan(tmp_path)),
        **PLAN_SECRETS,
    }
    settings = load_settings(environ)
    host_env = {**os.environ, **environ, "PYTHONUNBUFFERED": "1"}
    host_json = _host_json(tmp_path)
    correlation_id = f"kill-{uuid.uuid4().hex}"

    async def tick() -> tuple[SyncRun, Any]:
        deps = build_services(settings).membership
        return await start_wave_sync(deps, WAVE, correlation_id=correlation_id), deps

    # AND a planned sync: 3 chunks on the real wave-work queue
    run, deps = asyncio.run(tick())
    assert (run.adds, run.removes, run.total_chunks) == (PEOPLE, 0, 3)
    chunks = []
    for n in range(run.total_chunks):
        stored = deps.state.kv.sync.get(NAMESPACE, f"{run.run_id}:{n}")
        assert stored is not None
        chunks.append(set(stored.value["add"]))
    assert set().union(*chunks) == wanted
    assert all(len(c) == CHUNK_MEMBERS for c in chunks)

    first = second = None
    try:
        # WHEN the first host has written one chunk and part of the next, it is SIGKILLed
        first = Host("first-host", host_env, host_json, tmp_path)

        def part_way() -> bool:
            written = len(log.added_by(1))
            return written > CHUNK_MEMBERS and written % CHUNK_MEMBERS != 0

        wait_for("the first host to be part way through its second chunk", part_way, timeout=30, host=first)
        first.kill()
        killed_at = time.monotonic()
        # THEN the run is not done, and exactly one chunk is claimed and unfinished: the one in flight
        record = asyncio.run(read_sync_run(aio(deps.state), run.run_id))
        assert record is not None
        assert record["status"] == "running"
        done_at_kill = {int(n) for n in record["chunks"]}
        claims = {n: read_claim(storage, f"wave-sync:{run.run_id}:{n}") for n in range(run.total_chunks)}
        statuses = {n: (c or {}).get("Status") for n, c in claims.items()}
        in_flight = next(n for n, s in statuses.items() if s == "in_progress")
        assert [n for n, s in statuses.items() if s == "in_progress"] == [in_flight]
        assert all(statuses[n] == "completed" for n in done_at_kill)
        assert in_flight not in done_at_kill

        # AND WHEN the worker's claim expiry has passed and the tick is delivered again
        backdate_claim(
            storage,
            f"wave-sync:{run.run_id}:{in_flight}",
            datetime.now(UTC) - deps.chunk_claim_expiry - timedelta(minutes=1),
        )
        again, _ = asyncio.run(tick())
        assert again.run_id == run.run_id
        # AND a second host starts
        log.host = 2
        second = Host("second-host", host_env, host_json, tmp_path)

        def done() -> dict[str, Any] | None:
            found = asyncio.run(read_sync_run(aio(deps.state), run.run_id))
            return found if found is not None and found["status"] == "done" else None

        record = wait_for("the run to be done", done, timeout=40, host=second, interval=0.1)
        resumed_at = time.monotonic()
    finally:
        for host in (first, second):
            if host is not None:
                host.stop()
        _empty_wave_work(storage)

    assert record is not None
    # THEN the group holds exactly the wanted people
    assert set(emulator.store.member_ids(group_id)) == wanted
    writes = log.snapshot()
    added = log.added_by()
    # (host 1's writes: everything the emulator answered before the second host was started,
    # including a batch that was already inside the emulator when the process died)
    before, after = log.added_by(1), log.added_by(2)
    written_in_flight = chunks[in_flight] & set(before)
    # AND the kill was mid-sync and mid-chunk: chunks done, the one in flight part way, the rest untouched
    assert CHUNK_MEMBERS <= len(before) < PEOPLE, len(before)
    assert 0 < len(written_in_flight) < CHUNK_MEMBERS, len(written_in_flight)
    assert all(chunks[n] <= set(before) for n in done_at_kill)
    # AND every member was added by exactly one successful write: nobody written twice, not even
    # the in-flight chunk's members the dead worker had written (the resume re-read the group)
    assert sorted(added) == sorted(wanted), f"{len(added) - len(set(added))} members added twice"
    assert set(before).isdisjoint(after)
    assert set(after) == wanted - set(before)
    # AND no write was refused as a duplicate: 0 "already exist" 400s. The bound the design allows
    # is the narrowing of the one chunk in flight (a batch Graph applied but whose answer the dead
    # worker never read); it is 0 here because the resumed chunk read the group before writing.
    assert [w for w in writes if w.status not in (204, 429)] == []
    assert {len(w.members) for w in writes} == {MEMBERS_PER_PATCH}  # no narrowing, no removals
    assert sum(w.status == 204 for w in writes) == PEOPLE // MEMBERS_PER_PATCH
    assert 2 in log.member_reads  # the resumed chunk read the group first
    # AND the second host wrote only what was missing: the in-flight chunk's rest and the untouched chunks
    untouched = [n for n in range(run.total_chunks) if n not in done_at_kill and n != in_flight]
    assert set(after) == (chunks[in_flight] - written_in_flight).union(*(chunks[n] for n in untouched))
    # AND the run record's progress is right
    assert record["doneChunks"] == record["totalChunks"] == 3
    totals = {
        k: record[k]
        for k in ("adds", "removes", "added", "alreadyMembers", "removed", "alreadyAbsent", "failedCount")
    }
    assert totals == {
        "adds": PEOPLE,
        "removes": 0,
        "added": PEOPLE - len(written_in_flight),
        "alreadyMembers": len(written_in_flight),
        "removed": 0,
        "alreadyAbsent": 0,
        "failedCount": 0,
    }
    assert record["failed"] == []
    resumed = record["chunks"][str(in_flight)]
    assert (resumed["added"], resumed["alreadyMembers"]) == (
        CHUNK_MEMBERS - len(written_in_flight),
        len(written_in_flight),
    )
    for n in range(run.total_chunks):
        chunk_writes = [w for w in writes if chunks[n] >= set(w.members) and (n != in_flight or w.host == 2)]
        counts = record["chunks"][str(n)]
        assert counts["writeRequests"] == len(chunk_writes), n
        assert counts["throttled"] == sum(w.status == 429 for w in chunk_writes), n
    print(
        f"\nkill after {killed_at - started_at:.1f} s: {len(before)} members in "
        f"({len(written_in_flight)} of chunk {in_flight}); "
        f"resumed and done after {resumed_at - started_at:.1f} s; "
        f"PATCH items: {len(writes)} ({sum(w.status == 204 for w in writes)} ok, "
        f"{sum(w.status == 429 for w in writes)} throttled); host 2 added {len(after)}"
    )
