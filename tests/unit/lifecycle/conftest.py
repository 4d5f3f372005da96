"""Fixtures for the wave lifecycle unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.rollout.lifecycle import LifecycleDeps
from shared.state import StateStores, build_memory_state
from tests.unit.lifecycle.fakes import Clock, FakeEvidence, FakeMail, Recorder, plan_with


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(clock: Clock) -> StateStores:
    return build_memory_state(clock=clock)


@pytest.fixture
def evidence() -> FakeEvidence:
    return FakeEvidence()


@pytest.fixture
def make_deps(
    tmp_path: Path, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> Callable[..., tuple[LifecycleDeps, Recorder, Recorder]]:
    def build(mail: FakeMail | None = None, **pilot: Any) -> tuple[LifecycleDeps, Recorder, Recorder]:
        sync, membership = Recorder(), Recorder()
        deps = LifecycleDeps(
            plan=plan_with(tmp_path, **pilot),
            stores=stores.aio,
            evidence=evidence,
            sync_policies=sync,
            start_membership=membership,
            clock=clock,
            nudge_mail=mail,
        )
        return deps, sync, membership

    return build
