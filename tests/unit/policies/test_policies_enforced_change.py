"""Edits that tighten enforcement for users already enforced are flagged by `policies plan` ("affects
enforced users now") and refused by `policies apply` without --accept-enforced-change; named
locations: CIDRs compared as networks, trust as the plan says, adoption of a same-name location
shown as a warning."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cli.policies import EXIT_FAILED, EXIT_OK, PolicyDeps, plan_command
from shared.config import RolloutPlan
from shared.rollout.policies import TenantIds, apply_policy_plan, build_policy_plan
from shared.rollout.policies.locations import IP_TYPE
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import StateStores
from tests.aio import aio
from tests.unit.policies.conftest import FakeCaApi
from tests.unit.policies.test_policies_seed_render import with_options

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WIDE = {"allowedCountries": {"enabled": True, "countries": ["GB", "IE"], "outside": "block"}}
NARROW = {"allowedCountries": {"enabled": True, "countries": ["GB"], "outside": "block"}}


async def _apply(plan: RolloutPlan, tenant: TenantIds, api: Any, lookup: Any, stores: StateStores) -> None:
    policy_plan = await build_policy_plan(
        plan, api=api, lookup=lookup, tenant=tenant, kv=aio(stores.kv), clock=lambda: T0 + timedelta(days=30)
    )
    await apply_policy_plan(
        policy_plan, api=api, kv=aio(stores.kv), audit=aio(stores.audit), actor="t", correlation_id="c"
    )


def _deps(plan: RolloutPlan, tenant: TenantIds, api: Any, lookup: Any, stores: StateStores) -> PolicyDeps:
    async def resolve() -> TenantIds:
        return tenant

    return PolicyDeps(plan, api, lookup, resolve, stores.aio.kv, stores.aio.audit, stores.aio.idempotency)


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"json": False, "yes": True, "accept_enforced_change": False, **kw})


async def _enforced_countries(
    plan: RolloutPlan, tenant: TenantIds, api: FakeCaApi, lookup: Any, stores: StateStores, **options: Any
) -> None:
    wide = with_options(plan, **(options or WIDE))
    await write_wave_state(aio(stores.kv), "pilot", WaveState.ENFORCED, T0)
    kv = aio(stores.kv)
    for _ in range(2):  # the pilot soaks in the twin (records dated T0), then is enforced
        policy_plan = await build_policy_plan(
            wide, api=api, lookup=lookup, tenant=tenant, kv=kv, clock=lambda: T0 + timedelta(days=30)
        )
        await apply_policy_plan(
            policy_plan,
            api=api,
            kv=kv,
            audit=aio(stores.audit),
            actor="t",
            correlation_id="c",
            clock=lambda: T0,
        )
    assert api.by_name("outside allowed countries")["state"] == "enabled"


async def test_narrowing_the_countries_of_an_enforced_pair_needs_accepting(
    plan: RolloutPlan,
    tenant: TenantIds,
    ca_api: FakeCaApi,
    lookup: Any,
    stores: StateStores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _enforced_countries(plan, tenant, ca_api, lookup, stores)
    deps = _deps(with_options(plan, **NARROW), tenant, ca_api, lookup, stores)
    # WHEN the plan narrows the allowed countries: the pilot's users in IE are blocked at once
    await plan_command(deps, as_json=True)
    planned = json.loads(capsys.readouterr().out)
    [line] = planned["affectsEnforcedUsersNow"]
    assert "countriesAndRegions" in line
    assert "Sign-ins outside allowed countries" in line
    # THEN apply refuses it without the flag, and writes nothing
    writes = len(ca_api.writes)
    assert await _run_apply(deps, _args()) == EXIT_FAILED
    assert "affects enforced users now" in capsys.readouterr().out
    assert len(ca_api.writes) == writes
    countries = next(loc for loc in ca_api.locations.values() if "countriesAndRegions" in loc)
    assert countries["countriesAndRegions"] == ["GB", "IE"]
    # AND with --accept-enforced-change it goes through
    assert await _run_apply(deps, _args(accept_enforced_change=True)) == EXIT_OK
    assert countries["countriesAndRegions"] == ["GB"]


async def _run_apply(deps: PolicyDeps, args: argparse.Namespace) -> int:
    from cli.policies import _actor, apply_command

    return await apply_command(
        deps,
        yes=True,
        as_json=False,
        actor=_actor({}),
        confirm=lambda _: True,
        accept_enforced_change=args.accept_enforced_change,
    )


async def test_block_instead_of_mfa_for_enforced_users_is_flagged(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: Any, stores: StateStores
) -> None:
    mfa_outside = {"allowedCountries": {**WIDE["allowedCountries"], "outside": "mfa"}}
    await _enforced_countries(plan, tenant, ca_api, lookup, stores, **mfa_outside)
    policy_plan = await build_policy_plan(
        with_options(plan, **WIDE),
        api=ca_api,
        lookup=lookup,
        tenant=tenant,
        kv=aio(stores.kv),
        clock=lambda: T0 + timedelta(days=30),
    )
    assert any("grantControls.builtInControls" in line for line in policy_plan.enforced_changes), [
        (c.name, c.kind, c.fields) for c in policy_plan.diff.writes
    ]
    # a wave promotion (membership) is not such an edit: the gates govern it
    await write_wave_state(aio(stores.kv), "finance-hr", WaveState.REPORT_ONLY, T0)
    again = await build_policy_plan(
        with_options(plan, **mfa_outside), api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv)
    )
    assert again.enforced_changes == ()


def test_the_run_apply_flag_reaches_the_command() -> None:
    from cli.main import build_parser

    args = build_parser().parse_args(["policies", "apply", "--yes", "--accept-enforced-change"])
    assert args.accept_enforced_change is True


# --- named locations


async def test_cidrs_are_compared_as_networks_and_trust_follows_the_plan(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: Any, stores: StateStores
) -> None:
    office = {"trustedLocations": [{"name": "HQ", "ipRanges": ["2001:4860:10::/48"]}]}
    await _apply(with_options(plan, **office), tenant, ca_api, lookup, stores)
    [location] = ca_api.locations.values()
    assert location["isTrusted"] is False
    # Graph answers the range in another spelling: no difference
    location["ipRanges"][0]["cidrAddress"] = "2001:4860:0010:0:0::/48"
    policy_plan = await build_policy_plan(
        with_options(plan, **office), api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv)
    )
    assert [c.kind for c in policy_plan.locations.changes] == ["unchanged"]
    # AND isTrusted: true in the plan marks it trusted
    trusted = {"trustedLocations": [{"name": "HQ", "ipRanges": ["2001:4860:10::/48"], "isTrusted": True}]}
    policy_plan = await build_policy_plan(
        with_options(plan, **trusted), api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv)
    )
    [change] = policy_plan.locations.changes
    assert [(f.path, f.old, f.new) for f in change.fields] == [("isTrusted", False, True)]


async def test_adopting_a_same_name_location_is_a_plan_warning(
    plan: RolloutPlan, tenant: TenantIds, ca_api: FakeCaApi, lookup: Any, stores: StateStores
) -> None:
    office = with_options(plan, trustedLocations=[{"name": "HQ", "ipRanges": ["203.0.114.0/24"]}])
    existing = await ca_api.create_named_location(
        {
            "@odata.type": IP_TYPE,
            "displayName": "WaveGuard - Trusted network: HQ",
            "isTrusted": True,
            "ipRanges": [],
        }
    )
    policy_plan = await build_policy_plan(office, api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv))
    [note] = [n for n in policy_plan.notes if "adopts it by name" in n]
    assert existing["id"] in note
    await apply_policy_plan(
        policy_plan, api=ca_api, kv=aio(stores.kv), audit=aio(stores.audit), actor="t", correlation_id="c"
    )
    # once adopted (or created by WaveGuard), no more warning
    again = await build_policy_plan(office, api=ca_api, lookup=lookup, tenant=tenant, kv=aio(stores.kv))
    assert not [n for n in again.notes if "adopts it by name" in n]
