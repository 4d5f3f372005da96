"""The `make run` demo step shows the pilot wave promoted once its gates pass."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from local.demo_waves import reset_rollout_state, show_wave_promotion
from shared.config import load_plan_for, load_settings
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import build_state
from tests.aio import aio

pytestmark = pytest.mark.functional


@pytest.fixture
def demo_env(app_environ: dict[str, str]) -> Iterator[dict[str, str]]:
    yield app_environ
    settings = load_settings(app_environ)
    asyncio.run(reset_rollout_state(aio(build_state(settings).kv), load_plan_for(settings)))


def test_the_demo_walks_the_pilot_from_planned_to_enforced(
    demo_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the demo tenant / WHEN the demo step runs (no wave worker here: members are added directly)
    cli = "waveguard --settings moved.settings.json"
    show_wave_promotion(load_settings(demo_env), demo_env, membership_wait_seconds=0, cli=cli)
    out = capsys.readouterr().out
    # THEN it prints each transition with its gates and the policy change
    for line in (
        "[timer run 1] pilot: planned -> registering",
        "hold: failing: registration (18/31 members registered)",
        "[timer run 3] pilot: registering -> report-only",
        "[timer run 4] pilot: report-only -> enforced      promote: every gate passed",
        "WaveGuard - Require MFA: state enabled, 1 group(s), includes the pilot group",
    ):
        assert line in out, out
    # AND once the pilot is enforced its per-user MFA users move off it, with the counts before and after
    before = re.search(r"before: pilot: (\d+) on it .*; tenant-wide (\d+) users", out)
    after = re.search(r"after:  pilot: 0 on it .*; tenant-wide (\d+) users", out)
    moved = re.search(
        r"waveguard permfa migrate pilot: (\d+) moved off per-user MFA .*, 0 kept, 0 failed", out
    )
    assert before, out
    assert after, out
    assert moved, out
    assert f"`{cli} permfa rollback pilot`" in out  # the hint names the stack's settings file
    assert int(moved.group(1)) == int(before.group(1)) > 0
    assert int(after.group(1)) == int(before.group(2)) - int(moved.group(1))
    assert "pilot: done (" in out
    assert (
        asyncio.run(read_wave_state(aio(build_state(load_settings(demo_env)).kv), "pilot")).state
        is WaveState.ENFORCED
    )
