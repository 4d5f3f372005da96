"""The state backends under one contract: each test taking ``stores`` runs on the in-memory twin and
on Azure Tables (Azurite), with a clock the test moves by hand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from local.azurite import Azurite
from shared.config import Settings, StorageSettings
from shared.state import StateStores, build_memory_state, build_state

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
EXPIRY = timedelta(minutes=6)  # the stores' in-progress expiry


class FakeClock:
    """A clock tests move by hand (thread-safe reads)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", pytest.param("tables", marks=pytest.mark.functional)])
def stores(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[StateStores]:
    if request.param == "memory":
        yield build_memory_state(clock=clock, in_progress_expiry=EXPIRY)
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    settings = Settings(storage=StorageSettings(connection_string=azurite.connection_string))
    # A fresh set of tables per test: the session's Azurite is shared with other tests.
    yield build_state(
        settings, clock=clock, in_progress_expiry=EXPIRY, table_prefix=f"t{uuid.uuid4().hex[:10]}"
    )
