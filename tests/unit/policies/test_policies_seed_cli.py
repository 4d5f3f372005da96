"""`waveguard policies plan|apply` with named locations: shown before the policies, in text and JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from cli.policies import EXIT_CHANGES, EXIT_OK, PolicyDeps, run_apply, run_plan
from shared.config import RolloutPlan
from shared.rollout.policies import TenantIds
from shared.state import StateStores
from tests.unit.policies.test_policies_seed_render import with_options

OPTIONS: dict[str, Any] = {
    "trustedLocations": [{"name": "Head office", "ipRanges": ["203.0.114.0/24"]}],
    "allowedCountries": {"enabled": True, "countries": ["GB"], "outside": "mfa"},
}


@pytest.fixture
def deps(plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores) -> PolicyDeps:
    async def resolve() -> TenantIds:
        return tenant

    configured = with_options(plan, **OPTIONS)
    return PolicyDeps(
        configured, ca_api, lookup, resolve, stores.aio.kv, stores.aio.audit, stores.aio.idempotency
    )


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"json": False, "yes": False, **kw})


def test_plan_lists_the_named_locations_to_create_before_the_policies(
    deps: PolicyDeps, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_plan(_args(), {"USER": "ops"}, lambda env: deps) == EXIT_CHANGES
    out = capsys.readouterr().out
    lines = out.splitlines()
    first_location = next(i for i, line in enumerate(lines) if "named location" in line)
    first_policy = next(i for i, line in enumerate(lines) if "WaveGuard - Block legacy" in line)
    assert first_location < first_policy
    assert "+ create    named location WaveGuard - Trusted network: Head office  (new)" in out
    assert "+ create    named location WaveGuard - Allowed countries  (new)" in out
    assert "Named locations: 2 to create, 0 to update, 0 unchanged. Lint passed." in out


def test_apply_json_names_the_created_locations_and_a_rerun_plans_nothing(
    deps: PolicyDeps, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_plan(_args(json=True), {"USER": "ops"}, lambda env: deps) == EXIT_CHANGES
    planned = json.loads(capsys.readouterr().out)
    [office, countries] = planned["namedLocations"]["changes"]
    assert office["action"] == "create"
    assert office["location"]["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert countries["location"]["countriesAndRegions"] == ["GB"]
    assert run_apply(_args(json=True, yes=True), {"USER": "ops"}, lambda env: deps) == EXIT_OK
    applied = json.loads(capsys.readouterr().out)["applied"]
    assert [n["displayName"] for n in applied["namedLocationsCreated"]] == [
        "WaveGuard - Trusted network: Head office",
        "WaveGuard - Allowed countries",
    ]
    assert applied["writes"] == 2 + 7
    assert run_plan(_args(json=True), {"USER": "ops"}, lambda env: deps) == EXIT_OK
    again = json.loads(capsys.readouterr().out)
    assert again["namedLocations"]["summary"] == {"create": 0, "update": 0, "unchanged": 2}
