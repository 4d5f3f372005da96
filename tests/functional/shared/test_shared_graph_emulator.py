"""WaveGuard's Graph client against the local Graph emulator: anonymous auth, retries, error mapping."""

from __future__ import annotations

import httpx
import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graph_emulator import EmulatorHandle
from shared.config import load_settings
from shared.errors import NotFoundError
from shared.graph import build_graph_client, graph_health, to_waveguard_error
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional


@pytest.fixture
def emulator(emulator_server: EmulatorHandle) -> EmulatorHandle:
    emulator_server.reset()
    return emulator_server


def _client(emulator: EmulatorHandle) -> object:
    return build_graph_client(
        load_settings({"GRAPH_BASE_URL": emulator.base_url, "GRAPH_TIMEOUT_SECONDS": "5", **PLAN_SECRETS})
    )


async def test_a_throttled_read_is_retried_after_a_fractional_retry_after(emulator: EmulatorHandle) -> None:
    # GIVEN the emulator will throttle the next GET /users once, asking for 0.2 s
    fault = {"status": 429, "count": 1, "retryAfter": 0.2, "method": "GET", "path": "^/v1.0/users$"}
    async with httpx.AsyncClient() as admin:
        (await admin.post(f"{emulator.admin_url}/faults", json=fault)).raise_for_status()
        await admin.delete(f"{emulator.admin_url}/requests")
        # WHEN WaveGuard's client lists users
        page = await _client(emulator).users.get()  # type: ignore[attr-defined]
        log = (await admin.get(f"{emulator.admin_url}/requests", params={"path": "^/v1.0/users$"})).json()
    # THEN it got them on the second attempt
    assert page is not None
    assert page.value
    assert [r["status"] for r in log["value"]] == [429, 200]


async def test_an_unknown_user_is_not_found(emulator: EmulatorHandle) -> None:
    with pytest.raises(ODataError) as caught:
        await _client(emulator).users.by_user_id("nobody@contoso.com").get()  # type: ignore[attr-defined]
    assert isinstance(to_waveguard_error(caught.value), NotFoundError)


async def test_the_health_probe_passes_against_the_emulator(emulator: EmulatorHandle) -> None:
    assert await graph_health(_client(emulator))  # type: ignore[arg-type]
