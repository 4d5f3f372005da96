"""Each block or risk pair gives every wave its own report-only period (the wave's gates.minSoakDays,
from when its group first went into the pair's twin) before enforcing it, and the rollout timer's
marker brings the baseline sync back when that soak is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.config import RolloutPlan
from shared.rollout.lifecycle.evaluate import SYNC_KEY, SYNC_NAMESPACE
from shared.rollout.policies import ApplyResult, PolicyPlan, TenantIds, apply_policy_plan, build_policy_plan
from shared.rollout.policies.baseline import SOAK_REASON, schedule_soak_resync, sync_baseline
from shared.rollout.policies.soak import SOAK_NAMESPACE
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import ConcurrencyError, StateStores
from tests.aio import aio
from tests.unit.policies.conftest import WAVE_GROUPS
from tests.unit.policies.test_policies_seed_render import with_options

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PILOT, FINANCE = WAVE_GROUPS["pilot"], WAVE_GROUPS["finance-hr"]
PAIRS = ("Sign-in risk: block", "Sign-ins outside allowed countries")


def _risky(plan: RolloutPlan) -> RolloutPlan:
    return with_options(
        plan,
        signInRisk={"enabled": True, "mfaLevels": []},
        allowedCountries={"enabled": True, "countries": ["GB"]},
    )


class Env:
    def __init__(self, plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores):
        self.plan, self.tenant, self.api, self.lookup, self.stores = plan, tenant, ca_api, lookup, stores

    async def plan_at(self, now: datetime) -> PolicyPlan:
        return await build_policy_plan(
            self.plan,
            api=self.api,
            lookup=self.lookup,
            tenant=self.tenant,
            kv=aio(self.stores.kv),
            licence_p2=True,
            clock=lambda: now,
        )

    async def apply_at(self, now: datetime) -> tuple[PolicyPlan, ApplyResult]:
        policy_plan = await self.plan_at(now)
        assert policy_plan.lint.ok, policy_plan.lint.blocking
        result = await apply_policy_plan(
            policy_plan,
            api=self.api,
            kv=aio(self.stores.kv),
            audit=aio(self.stores.audit),
            actor="t",
            correlation_id="c",
            clock=lambda: now,
        )
        return policy_plan, result

    def groups(self, suffix: str) -> tuple[str, list[str]]:
        policy = self.api.by_name(suffix)
        return policy["state"], policy["conditions"]["users"]["includeGroups"]


@pytest.fixture
def env(plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores) -> Env:
    return Env(_risky(plan), tenant, ca_api, lookup, stores)


async def _enforce(env: Env, wave: str, when: datetime) -> None:
    await write_wave_state(aio(env.stores.kv), wave, WaveState.ENFORCED, when)


async def test_a_new_block_pair_holds_an_enforced_wave_report_only_until_its_soak_is_due(env: Env) -> None:
    # GIVEN the pilot enforced (gates.minSoakDays: 7) and the options turned on today
    await _enforce(env, "pilot", T0)
    soak_days = env.plan.wave("pilot").gates.min_soak_days
    assert soak_days > 0
    # WHEN applied now, again an hour later and once more the day before the soak ends
    first, _ = await env.apply_at(T0)
    for later in (T0 + timedelta(hours=1), T0 + timedelta(days=soak_days, hours=-1)):
        await env.apply_at(later)
        # THEN the pilot stays in each pair's report-only twin; nothing blocks it yet
        for title in PAIRS:
            assert env.groups(f"{title} (report-only waves)") == (
                "enabledForReportingButNotEnforced",
                [PILOT],
            )
            state, groups = env.groups(title)
            assert groups == []
            assert state != "enabled"
    assert [(s.pair, s.wave) for s in first.soaking] == [
        ("sign-in-risk-block", "pilot"),
        ("countries", "pilot"),
    ]
    # AND once the wave's soak has passed, the next apply moves it to the enforcing policy
    due, result = await env.apply_at(T0 + timedelta(days=soak_days, minutes=1))
    assert due.soaking == ()
    for title in PAIRS:
        assert env.groups(title) == ("enabled", [PILOT])
        assert env.groups(f"{title} (report-only waves)")[1] == []
    assert result.updated
    # AND the MFA pair, whose soak is the wave's own report-only phase, enforced the pilot all along
    assert env.groups("- Require MFA") == ("enabled", [PILOT])


async def test_a_wave_promoted_later_soaks_from_when_its_group_first_entered_the_twin(env: Env) -> None:
    soak_days = env.plan.wave("finance-hr").gates.min_soak_days
    # GIVEN finance-hr in report-only when the options are turned on: its group goes into the twins
    await write_wave_state(aio(env.stores.kv), "finance-hr", WaveState.REPORT_ONLY, T0)
    await env.apply_at(T0)
    assert env.groups("Sign-in risk: block (report-only waves)")[1] == [FINANCE]
    # WHEN it is promoted after its soak: it is enforced by the block pairs at once
    await _enforce(env, "finance-hr", T0 + timedelta(days=soak_days + 1))
    await env.apply_at(T0 + timedelta(days=soak_days + 1))
    await env.apply_at(T0 + timedelta(days=soak_days + 1, hours=1))
    assert env.groups("Sign-in risk: block") == ("enabled", [FINANCE])
    # AND a record made for another twin (the option turned off and on: a new twin) does not count
    stored = env.stores.kv.get(SOAK_NAMESPACE, "sign-in-risk-block:finance-hr")
    assert stored is not None
    assert stored.value["since"] == T0.isoformat()
    env.stores.kv.put(SOAK_NAMESPACE, "sign-in-risk-block:finance-hr", {**stored.value, "twinId": "old"})
    policy_plan = await env.plan_at(T0 + timedelta(days=soak_days + 2))
    moved = {c.name: c.desired.groups_by_wave for c in policy_plan.diff.changes}
    assert moved[env.plan.policies.name_prefix + "Sign-in risk: block"] == {}


async def test_the_timer_marker_stays_set_until_the_soak_is_due_without_reading_graph(env: Env) -> None:
    await _enforce(env, "pilot", T0)
    policy_plan, _ = await env.apply_at(T0)
    kv = aio(env.stores.kv)
    # WHEN the apply leaves a soak running
    due = await schedule_soak_resync(kv, policy_plan)
    assert due == T0 + timedelta(days=env.plan.wave("pilot").gates.min_soak_days)
    marker = env.stores.kv.get(SYNC_NAMESPACE, SYNC_KEY)
    assert marker is not None
    assert marker.value == {"pending": True, "reason": SOAK_REASON, "soakDue": due.isoformat()}
    # AND the timer syncs for it before the soak is due (a client that must not be touched)
    result = await sync_baseline(
        object(),  # type: ignore[arg-type]
        env.plan,
        env.stores.aio,
        actor="wave-timer",
        correlation_id="c",
        reason=SOAK_REASON,
        clock=lambda: T0 + timedelta(days=1),
    )
    # THEN nothing was read or written, and the timer's clear (conditional on its read) misses
    assert result.writes == 0
    assert result.notes
    with pytest.raises(ConcurrencyError):
        env.stores.kv.put(SYNC_NAMESPACE, SYNC_KEY, {"pending": False}, if_match=marker.etag)
    assert env.stores.kv.get(SYNC_NAMESPACE, SYNC_KEY).value["pending"] is True  # type: ignore[union-attr]


async def test_no_soak_leaves_the_marker_alone(env: Env) -> None:
    policy_plan, _ = await env.apply_at(T0)  # no enforced wave: nothing soaks
    assert policy_plan.soaking == ()
    assert await schedule_soak_resync(aio(env.stores.kv), policy_plan) is None
    assert env.stores.kv.get(SYNC_NAMESPACE, SYNC_KEY) is None
