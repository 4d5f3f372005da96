"""The rollout report against Azurite and the real app in the mini-host: a seeded history, the
report's URL with its function key, and the settings the CLI runs with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.config import load_plan_for, load_settings
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.state import StateStores, build_state
from tests.app_host import app_host
from tests.report_seed import Seeded, report_plan, seed_history

KEY = "report-test-key"
# The rollout timer must not evaluate the seeded waves while a test reads them.
NEVER = "0 0 0 1 1 *"


@dataclass(frozen=True, slots=True)
class SeededStorage:
    environ: dict[str, str]
    stores: StateStores
    seeded: Seeded


@pytest.fixture
def seeded_storage(app_environ: dict[str, str], tmp_path: Path) -> Iterator[SeededStorage]:
    """A rollout's history in Azurite, under wave names no other test uses (the tables are shared);
    the saved per-user MFA report (one per tenant) is put back afterwards."""
    token = f"r{uuid.uuid4().hex[:8]}"
    environ = {
        **app_environ,
        "WAVEGUARD_CONFIG": str(report_plan(tmp_path / "plan.yaml", token)),
        "WAVEGUARD_WAVE_SCHEDULE": NEVER,
    }
    settings = load_settings(environ)
    stores = build_state(settings)
    before = stores.kv.get(PERMFA_NAMESPACE, REPORT_KEY)
    plan = load_plan_for(settings)
    # On a thread of its own: a test may hold a running event loop here (Playwright's sync API).
    with ThreadPoolExecutor(1) as pool:
        seeded = pool.submit(asyncio.run, seed_history(stores.aio, plan, now=datetime.now(UTC))).result()
    try:
        yield SeededStorage(environ, stores, seeded)
    finally:
        if before is None:
            stores.kv.delete(PERMFA_NAMESPACE, REPORT_KEY)
        else:
            stores.kv.put(PERMFA_NAMESPACE, REPORT_KEY, before.value)


@dataclass(frozen=True, slots=True)
class ReportApp:
    url: str
    key: str
    seeded: Seeded


@pytest.fixture
def report_app(seeded_storage: SeededStorage, storage_connection_string: str) -> Iterator[ReportApp]:
    """The real function app serving the seeded report at ``url`` (function key ``key``)."""
    host = app_host(seeded_storage.environ, storage_connection_string, function_keys={"default": KEY})
    with host:
        yield ReportApp(f"{host.base_url}/api/report", KEY, seeded_storage.seeded)
