"""Shared set-up for the `waveguard permfa` tests: clean state, a recorded pilot group, members
added as a person in the portal would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.rollout.permfa.ledger import clear_ledger
from shared.rollout.wave_groups import WAVE_GROUPS_NAMESPACE
from shared.rollout.wave_state import WAVES_NAMESPACE
from shared.state import StateStores, build_state, utc_now


@pytest.fixture
def stores(app_environ: dict[str, str]) -> Iterator[StateStores]:
    settings = load_settings(app_environ)
    stores = build_state(settings)
    waves = [wave.name for wave in load_plan_for(settings).waves]

    def clean() -> None:
        for name in waves:
            stores.kv.delete(WAVES_NAMESPACE, name)
            stores.kv.delete(WAVE_GROUPS_NAMESPACE, name)
            asyncio.run(clear_ledger(stores.aio.kv, name))
        stores.kv.delete(PERMFA_NAMESPACE, REPORT_KEY)

    clean()
    yield stores
    clean()


def pilot_group(emulator: EmulatorHandle, stores: StateStores, wave: str, name: str) -> str:
    """The pilot's group, created as WaveGuard creates it when the wave starts (and recorded)."""
    body = {"displayName": name, "mailEnabled": False, "mailNickname": "wgpilot", "securityEnabled": True}
    created = httpx.post(f"{emulator.base_url}/groups", json=body, headers=ADMIN_HEADERS).json()
    stores.kv.put(WAVE_GROUPS_NAMESPACE, wave, {"groupId": created["id"], "createdAt": utc_now().isoformat()})
    return str(created["id"])


def add_member(emulator: EmulatorHandle, group_id: str, user_id: str) -> None:
    """Add a member as a person in the portal would (not through WaveGuard)."""
    reference = {"@odata.id": f"{emulator.base_url}/directoryObjects/{user_id}"}
    answer = httpx.post(
        f"{emulator.base_url}/groups/{group_id}/members/$ref", json=reference, headers=ADMIN_HEADERS
    )
    assert answer.status_code == 204, answer.text
