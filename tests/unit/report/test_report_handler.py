"""`GET /api/report`'s handler over in-memory stores: the page, and each failure as problem JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func

from handlers.report import _handle
from shared.config.settings import Settings
from shared.errors import RetryableError
from shared.services import Services, ServicesProvider
from shared.state import StateStores, build_memory_state
from shared.state.memory import MemoryKeyValueStore
from tests.report_seed import load_report_plan, seed_history

NOW = datetime(2026, 3, 20, 14, 30, tzinfo=UTC)


class _UnreachableKeyValueStore(MemoryKeyValueStore):
    """Reads fail as Azure Tables' do when storage cannot be reached."""

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        raise RetryableError("storage unreachable", operation="read state")


def _provider(tmp_path: Path, stores: StateStores) -> ServicesProvider:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    services = Services(settings=Settings(), plan=plan, stores=stores, queues=None, clock=lambda: NOW)  # type: ignore[arg-type]
    return ServicesProvider.of(services)


def _get(**params: str) -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/report", params=params, body=b"")


async def test_the_page_and_its_headers(tmp_path: Path) -> None:
    stores = build_memory_state(clock=lambda: NOW)
    provider = _provider(tmp_path, stores)
    await seed_history(stores.aio, (await provider.aget()).plan, now=NOW)
    answer = await _handle(_get(code="k"), provider)
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    assert answer.charset == "utf-8"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    # AND no site may frame it, and its URL (which may hold ?code=) never leaves in a Referer
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.get_body().decode().startswith("<!doctype html>")


async def test_a_bad_parameter_is_400_problem_json(tmp_path: Path) -> None:
    answer = await _handle(_get(wave="nope"), _provider(tmp_path, build_memory_state()))
    assert (answer.status_code, answer.mimetype) == (400, "application/problem+json")
    body: dict[str, Any] = json.loads(answer.get_body())
    assert body["errors"][0]["field"] == "wave"


async def test_a_stored_record_it_cannot_read_is_named_in_a_500(tmp_path: Path) -> None:
    stores = build_memory_state()
    stores.kv.put("waves", "t-pilot", {"state": "half-enforced", "since": NOW.isoformat()})
    answer = await _handle(_get(), _provider(tmp_path, stores))
    assert answer.status_code == 500
    assert "waves/t-pilot.state: unknown state 'half-enforced'" in json.loads(answer.get_body())["detail"]


async def test_storage_down_is_503_with_retry_after(tmp_path: Path) -> None:
    memory = build_memory_state()
    stores = StateStores(memory.idempotency, _UnreachableKeyValueStore(), memory.audit, memory.offload)
    answer = await _handle(_get(), _provider(tmp_path, stores))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    assert json.loads(answer.get_body())["detail"] == "the state store is not available; retry later"
