"""Session-wide fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.azurite import Azurite, start_azurite
from local.graph_emulator import EmulatorHandle, start_emulator


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One in-memory Azurite on free ports for the whole test session."""
    az = start_azurite()
    try:
        yield az
    finally:
        az.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorHandle]:
    """One Graph emulator (demo tenant) on a free port for the whole session; reset it per test."""
    handle = start_emulator(port=0, seed="demo")
    try:
        yield handle
    finally:
        handle.stop()


# App settings every test app needs: the secrets the example plan (config/waveguard.yaml)
# interpolates (test values only) and the rollout timer's schedule, which the function's binding
# reads as %WAVEGUARD_WAVE_SCHEDULE% (local.settings.json holds it for `make run`).
PLAN_SECRETS: dict[str, str] = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "PAGERDUTY_ROUTING_KEY": "R0ut1ngKeyForTests00000000000000",
    "TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/teams",
    "PAGERDUTY_URL": "http://127.0.0.1:9/v2/enqueue",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "test-client-state",
    "WAVEGUARD_WAVE_SCHEDULE": "0 */15 * * * *",
    "WAVEGUARD_SUBSCRIPTION_SCHEDULE": "0 0 */6 * * *",
    "WAVEGUARD_GROUP_RESYNC_SCHEDULE": "0 30 2 * * *",
    "WAVEGUARD_RISK_SCHEDULE": "0 0 0 1 1 *",
}


@pytest.fixture
def app_environ(storage_connection_string: str, emulator_server: EmulatorHandle) -> dict[str, str]:
    """The environment the app runs with in tests: Azurite, the emulator, the example plan."""
    emulator_server.reset()
    return {
        "AzureWebJobsStorage": storage_connection_string,
        "GRAPH_BASE_URL": emulator_server.base_url,
        "WAVEGUARD_CONFIG": "config/waveguard.yaml",
        **PLAN_SECRETS,
    }
