"""The wave-work queue trigger in the mini-host: a planned sync is applied by the real worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from shared.config import load_settings
from shared.rollout.membership import SyncRun, read_sync_run, start_wave_sync
from shared.services import build_services
from tests.aio import aio
from tests.app_host import app_host
from tests.waiting import wait_for

pytestmark = pytest.mark.functional

PILOT_GROUP = "WaveGuard - Wave 1 Pilot"


def _wait_for(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_for(what, probe, timeout=timeout)


def test_the_worker_applies_every_chunk_of_a_planned_sync(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, storage_connection_string: str
) -> None:
    # GIVEN the demo tenant, an empty pilot wave group and the app running in the mini-host
    http = httpx.Client(timeout=10)
    graph = emulator_server.base_url
    group = http.post(f"{emulator_server.admin_url}/groups", json={"displayName": PILOT_GROUP})
    group_id = group.raise_for_status().json()["id"]
    it_people = http.get(f"{graph}/users?$filter=department eq 'IT'&$top=999").raise_for_status().json()
    wanted = {u["id"] for u in it_people["value"]}

    def members() -> set[str]:
        page = http.get(f"{graph}/groups/{group_id}/members?$select=id&$top=999").raise_for_status().json()
        return {m["id"] for m in page["value"]}

    host = app_host(app_environ, storage_connection_string)
    with host:
        # WHEN the wave timer's call plans the pilot sync (messages go to the real wave-work queue)
        deps = build_services(load_settings(app_environ)).membership

        async def plan() -> SyncRun:
            return await start_wave_sync(deps, "pilot", correlation_id=f"host-{time.time_ns()}")

        run = asyncio.run(plan())
        # THEN the worker makes the group hold exactly the pilot's people, and the run says done
        _wait_for("the pilot group to fill", lambda: members() == wanted)
        _wait_for(
            "the run to be done",
            lambda: (asyncio.run(read_sync_run(aio(deps.state), run.run_id)) or {}).get("status") == "done",
        )
    record = asyncio.run(read_sync_run(aio(deps.state), run.run_id))
    assert record is not None
    assert (run.adds, record["added"], record["failedCount"]) == (len(wanted), len(wanted), 0)
