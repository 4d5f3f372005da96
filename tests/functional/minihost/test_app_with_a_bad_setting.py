"""The app loads whatever its settings: one bad app setting leaves every function indexed, HTTP
answers 503 problem JSON, anonymous health says only "unhealthy", the keyed details name the
setting, and a queued message waits instead of being lost."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest
from azure.storage.queue import QueueClient

from local.graph_emulator import EmulatorHandle
from shared.envelope import Envelope
from shared.names import HR_EVENTS, poison
from tests.app_host import app_host
from tests.conftest import PLAN_SECRETS
from tests.queue_helpers import fresh_queue
from tests.waiting import wait_for

pytestmark = pytest.mark.functional
KEY = "bad-setting-test-key"


@pytest.fixture
def app(storage_connection_string: str, emulator_server: EmulatorHandle) -> Iterator[tuple[str, object]]:
    environ = {
        "GRAPH_BASE_URL": emulator_server.base_url,
        "WAVEGUARD_CONFIG": "config/waveguard.yaml",
        **PLAN_SECRETS,
        # GIVEN one bad app setting: a Graph timeout longer than an invocation can afford
        "GRAPH_TIMEOUT_SECONDS": "450",
    }
    fresh_queue(storage_connection_string, HR_EVENTS)
    fresh_queue(storage_connection_string, poison(HR_EVENTS))
    host = app_host(environ, storage_connection_string, function_keys={"default": KEY})
    with host:
        yield f"{host.base_url}/api", host


def test_every_function_loads_and_each_kind_fails_as_it_should(
    app: tuple[str, object], storage_connection_string: str, caplog: pytest.LogCaptureFixture
) -> None:
    api, host = app
    # THEN every function was indexed (the import did not fail)
    described = host.describe()  # type: ignore[attr-defined]
    for name in (
        "health",
        "health_details",
        "hr_events",
        "hr_bamboohr",
        "hr_worker",
        "wave_worker",
        "wave_timer",
    ):
        assert name in described
    # AND the HR ingress answers 503 problem JSON that names nothing secret
    answer = httpx.post(f"{api}/hr/events", content=b"{}", headers={"content-type": "application/json"})
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"]
    assert "GRAPH_TIMEOUT_SECONDS" not in answer.text
    assert "450" not in answer.text
    # AND anonymous health says only "unhealthy"
    health = httpx.get(f"{api}/health")
    assert (health.status_code, health.json()) == (503, {"status": "unhealthy"})
    # AND the details, with the function key, name the broken setting
    details = httpx.get(f"{api}/health/details", params={"code": KEY})
    assert details.status_code == 503
    assert "GRAPH_TIMEOUT_SECONDS" in details.json()["checks"]["settings"]["detail"]
    assert httpx.get(f"{api}/health/details").status_code == 401
    # WHEN a message arrives on hr-events
    caplog.set_level(logging.ERROR)
    queue = QueueClient.from_connection_string(storage_connection_string, HR_EVENTS)
    queue.send_message(
        base64.b64encode(Envelope(type="employee.hired", payload={}).to_json().encode()).decode()
    )
    # THEN the worker fails retryably, naming the setting, and the message stays on its queue
    wait_for(
        "the worker's retryable failure",
        lambda: any("GRAPH_TIMEOUT_SECONDS" in r.getMessage() for r in caplog.records),
    )
    assert queue.get_queue_properties().approximate_message_count == 1
    assert (
        QueueClient.from_connection_string(storage_connection_string, poison(HR_EVENTS))
        .get_queue_properties()
        .approximate_message_count
        == 0
    )
