"""The wave lifecycle against the real Graph emulator and Azurite: a demo plan, helpers, state."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from local.graph_emulator import EmulatorHandle
from shared.config import APP_ROOT, load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.queues import AsyncQueueSender, get_queue_sender
from shared.rollout.lifecycle import LifecycleDeps
from shared.services import Services
from shared.state import StateStores, build_state

PILOT_GROUP = "WaveGuard - Wave 1 Pilot"


def write_plan(path: Path, **pilot: Any) -> Path:
    """The example plan with the pilot wave's fields overridden (camelCase keys)."""
    data = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    for key, value in pilot.items():
        current = data["waves"][0].get(key)
        data["waves"][0][key] = {**current, **value} if isinstance(current, dict) else value
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def it_user_ids(emulator: EmulatorHandle) -> list[str]:
    page = httpx.get(f"{emulator.base_url}/users", params={"$filter": "department eq 'IT'", "$top": "999"})
    return sorted(u["id"] for u in page.json()["value"])


def create_pilot_group(emulator: EmulatorHandle, members: list[str]) -> str:
    """The pilot wave group with these members (what the membership sync would have written)."""
    answer = httpx.post(f"{emulator.admin_url}/groups", json={"displayName": PILOT_GROUP, "members": members})
    answer.raise_for_status()
    body = answer.json()
    return str((body[0] if isinstance(body, list) else body)["id"])


def registration_of(emulator: EmulatorHandle, user_ids: list[str]) -> dict[str, bool]:
    url = f"{emulator.base_url}/reports/authenticationMethods/userRegistrationDetails"
    rows = httpx.get(url, params={"$top": "999"}).json()["value"]
    return {r["id"]: bool(r["isMfaRegistered"]) for r in rows if r["id"] in user_ids}


def register_methods(emulator: EmulatorHandle, user_ids: list[str]) -> None:
    for user_id in user_ids:
        answer = httpx.post(
            f"{emulator.admin_url}/users/{user_id}/methods", json={"methods": ["microsoftAuthenticatorPush"]}
        )
        answer.raise_for_status()


def inject_sign_ins(
    emulator: EmulatorHandle, user_ids: list[str], policy: dict[str, Any], result: str
) -> None:
    applied = [{"id": policy["id"], "displayName": policy["displayName"], "result": result}]
    body = [
        {"userId": u, "appDisplayName": "Office 365", "appliedConditionalAccessPolicies": applied}
        for u in user_ids
    ]
    httpx.post(f"{emulator.admin_url}/signins", json=body).raise_for_status()


def live_policy(emulator: EmulatorHandle, title: str) -> dict[str, Any]:
    policies = httpx.get(f"{emulator.base_url}/identity/conditionalAccess/policies").json()["value"]
    return next(p for p in policies if p["displayName"] == f"WaveGuard - {title}")


@pytest.fixture
def make_deps(
    app_environ: dict[str, str], tmp_path: Path
) -> Callable[..., tuple[LifecycleDeps, dict[str, str]]]:
    """Lifecycle deps over the emulator and Azurite tables of this test only (a fresh prefix)."""

    def build(start_membership: Any = None, **pilot: Any) -> tuple[LifecycleDeps, dict[str, str]]:
        env = {**app_environ, "WAVEGUARD_CONFIG": str(write_plan(tmp_path / "plan.yaml", **pilot))}
        settings = load_settings(env)
        stores: StateStores = build_state(settings, table_prefix=f"t{uuid.uuid4().hex[:10]}")
        services = Services(
            settings=settings,
            plan=load_plan_for(settings),
            stores=stores,
            queues=AsyncQueueSender(get_queue_sender(settings)),
        )
        deps = services.lifecycle_for(client=build_graph_client(settings))
        if start_membership:
            deps = dataclasses.replace(deps, start_membership=start_membership)
        return deps, env

    return build


def clear_request_log(emulator: EmulatorHandle) -> None:
    httpx.delete(f"{emulator.admin_url}/requests").raise_for_status()


def request_count(emulator: EmulatorHandle, path: str) -> int:
    return int(httpx.get(f"{emulator.admin_url}/requests", params={"path": path}).json()["count"])


def inject_fault(emulator: EmulatorHandle, fault: dict[str, Any]) -> None:
    httpx.post(f"{emulator.admin_url}/faults", json=fault).raise_for_status()
