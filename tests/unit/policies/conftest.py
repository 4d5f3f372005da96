"""Fakes for the policy unit tests: an in-memory Conditional Access API and directory."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

import pytest

from shared.config import APP_ROOT, RolloutPlan, load_plan
from shared.rollout.policies import TenantIds
from shared.state import StateStores, build_memory_state
from tests.conftest import PLAN_SECRETS

BG_USERS = ("00000000-0000-0000-0000-0000000000b1", "00000000-0000-0000-0000-0000000000b2")
BG_GROUP = "00000000-0000-0000-0000-00000000000e"
WAVE_GROUPS = {
    "pilot": "00000000-0000-0000-0000-000000000001",
    "finance-hr": "00000000-0000-0000-0000-000000000002",
    "sales-marketing": "00000000-0000-0000-0000-000000000003",
    "everyone": "00000000-0000-0000-0000-000000000004",
}

# What Graph adds to a policy it returns: server-managed fields and unset properties as null.
_GRAPH_EXTRAS: dict[str, Any] = {
    "templateId": None,
    "sessionControls": None,
    "conditions": {"platforms": None, "locations": None, "signInRiskLevels": [], "userRiskLevels": []},
    "grantControls": {"customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": None},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            for k, v in value.items():
                out[key].setdefault(k, v)
        else:
            out.setdefault(key, value)
    return out


class FakeCaApi:
    """Conditional Access policies and named locations in memory, answered in Graph's shape; counts
    every write (named location writes as ``location-create`` / ``location-update``)."""

    def __init__(self) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_next_create: Exception | None = None
        self.location_reads = 0

    def seed(self, body: dict[str, Any]) -> str:
        policy_id = str(uuid.uuid4())
        self.policies[policy_id] = _merge(
            {**body, "id": policy_id, "createdDateTime": "2026-11-01T00:00:00Z", "modifiedDateTime": None},
            _GRAPH_EXTRAS,
        )
        return policy_id

    async def list_policies(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.policies.values()]

    async def create_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail_next_create is not None:
            error, self.fail_next_create = self.fail_next_create, None
            raise error
        policy_id = self.seed(body)
        self.writes.append(("create", policy_id, copy.deepcopy(body)))
        return copy.deepcopy(self.policies[policy_id])

    async def update_policy(self, policy_id: str, patch: dict[str, Any]) -> None:
        self.writes.append(("update", policy_id, copy.deepcopy(patch)))
        policy = self.policies[policy_id]
        for key, value in patch.items():  # Graph replaces a complex property given in a PATCH
            policy[key] = copy.deepcopy(value)
        policy["modifiedDateTime"] = "2026-11-02T00:00:00Z"

    async def list_named_locations(self) -> list[dict[str, Any]]:
        self.location_reads += 1
        return [copy.deepcopy(loc) for loc in self.locations.values()]

    async def create_named_location(self, body: dict[str, Any]) -> dict[str, Any]:
        location_id = str(uuid.uuid4())
        self.locations[location_id] = {**copy.deepcopy(body), "id": location_id}
        self.writes.append(("location-create", location_id, copy.deepcopy(body)))
        return copy.deepcopy(self.locations[location_id])

    async def update_named_location(self, location_id: str, patch: dict[str, Any]) -> None:
        self.writes.append(("location-update", location_id, copy.deepcopy(patch)))
        self.locations[location_id].update(copy.deepcopy(patch))

    def by_name(self, suffix: str) -> dict[str, Any]:
        matches = [p for p in self.policies.values() if p["displayName"].endswith(suffix)]
        assert len(matches) == 1, [p["displayName"] for p in self.policies.values()]
        return matches[0]


class FakeLookup:
    """A directory that knows some user, group and role ids; everything else is missing."""

    def __init__(self, users: Iterable[str], groups: Iterable[str], roles: Iterable[str] = ()) -> None:
        self.users = {u.lower() for u in users}
        self.groups = {g.lower() for g in groups}
        self.roles = {r.lower() for r in roles}

    async def missing_users(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i.lower() not in self.users}

    async def missing_groups(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i.lower() not in self.groups}

    async def missing_roles(self, ids: Iterable[str]) -> set[str]:
        from shared.rollout.policies.tenant import BUILT_IN_ROLE_TEMPLATES

        return {i for i in ids if i not in BUILT_IN_ROLE_TEMPLATES and i.lower() not in self.roles}


@pytest.fixture
def plan() -> RolloutPlan:
    return load_plan(APP_ROOT / "config" / "waveguard.yaml", PLAN_SECRETS)


@pytest.fixture
def tenant() -> TenantIds:
    return TenantIds(BG_USERS, BG_GROUP, dict(WAVE_GROUPS))


@pytest.fixture
def ca_api() -> FakeCaApi:
    return FakeCaApi()


@pytest.fixture
def lookup() -> FakeLookup:
    return FakeLookup(BG_USERS, [BG_GROUP, *WAVE_GROUPS.values()])


@pytest.fixture
def stores() -> StateStores:
    return build_memory_state()
