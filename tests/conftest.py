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
