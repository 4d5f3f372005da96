"""The desired WaveGuard policies, rendered from the plan, the tenant's ids and the wave states.

WaveGuard recognises its own policies by display name: every name starts with
``policies.namePrefix`` (default ``"WaveGuard - "``). Policies without the prefix are never
read as WaveGuard's, never changed and never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from shared.config import RolloutPlan
from shared.rollout.policies.templates import (
    ENABLED,
    REPORT_ONLY,
    Exclusions,
    PolicyBody,
    PolicyState,
    admin_azure_management,
    block_legacy_authentication,
    mfa_for_apps,
    require_mfa,
    require_mfa_registration,
)
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import AsyncKeyValuePort

__all__ = [
    "DARK_PHASES",
    "POLICY_TITLES",
    "DesiredPolicy",
    "TenantIds",
    "read_wave_states",
    "render_policies",
]

# Waves whose members are watched (report-only) but not yet enforced.
DARK_PHASES: Final = frozenset({WaveState.REGISTERING, WaveState.REPORT_ONLY})

# Names after the prefix; stable, because the name is how WaveGuard finds its policies again.
POLICY_TITLES: Final = {
    "legacy": "Block legacy authentication",
    "mfa": "Require MFA",
    "mfa-report-only": "Require MFA (report-only waves)",
    "registration": "Require MFA registration",
    "admins": "Administrators: MFA and compliant device for Azure management",
    "high-risk-apps": "MFA for high-risk apps",
}


@dataclass(frozen=True, slots=True)
class TenantIds:
    """The plan's references resolved to object ids (None: not found in the tenant)."""

    break_glass_user_ids: tuple[str, ...]
    exclusion_group_id: str | None
    wave_group_ids: Mapping[str, str | None]
    # Plan references that did not resolve, as "field: message" (the lint reports them).
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DesiredPolicy:
    """One policy WaveGuard wants, and whether its state follows the waves (else live state is kept)."""

    key: str
    body: PolicyBody
    wave_driven: bool = False
    groups_by_wave: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.body["displayName"])

    @property
    def state(self) -> str:
        return str(self.body["state"])


async def read_wave_states(kv: AsyncKeyValuePort, plan: RolloutPlan) -> dict[str, WaveState]:
    """Each wave's state from the KV store (namespace ``waves``); an absent record is ``planned``.

    Raises:
        InvalidPayloadError: a stored wave record is malformed (named in the message).
        RetryableError: the store could not be reached.
    """
    return {wave.name: (await read_wave_state(kv, wave.name)).state for wave in plan.waves}


def _wave_groups(
    tenant: TenantIds, states: Mapping[str, WaveState], wanted: frozenset[str]
) -> dict[str, str]:
    return {
        wave: group_id
        for wave, group_id in tenant.wave_group_ids.items()
        if group_id and states.get(wave, WaveState.PLANNED) in wanted
    }


def render_policies(
    plan: RolloutPlan, tenant: TenantIds, wave_states: Mapping[str, WaveState]
) -> list[DesiredPolicy]:
    """The baseline for this plan: legacy block, MFA (enforced + report-only twin), registration,
    administrators, and MFA for high-risk apps when configured. All exclude break-glass."""
    config = plan.policies
    exclusions = Exclusions(
        tuple(sorted(tenant.break_glass_user_ids)),
        (tenant.exclusion_group_id,) if tenant.exclusion_group_id else (),
    )
    state: PolicyState = config.state

    def name(key: str) -> str:
        return config.name_prefix + POLICY_TITLES[key]

    enforced = _wave_groups(tenant, wave_states, frozenset({WaveState.ENFORCED}))
    dark = _wave_groups(tenant, wave_states, DARK_PHASES)
    # A wave promotion is what enables the enforcing policy; with no enforced wave it stays dark.
    mfa_state: PolicyState = ENABLED if enforced else state
    desired: list[DesiredPolicy] = []
    if config.block_legacy_auth:
        desired.append(
            DesiredPolicy("legacy", block_legacy_authentication(name("legacy"), exclusions, state=state))
        )
    desired.append(
        DesiredPolicy(
            "mfa",
            require_mfa(name("mfa"), exclusions, group_ids=list(enforced.values()), state=mfa_state),
            wave_driven=True,
            groups_by_wave=enforced,
        )
    )
    desired.append(
        DesiredPolicy(
            "mfa-report-only",
            require_mfa(
                name("mfa-report-only"), exclusions, group_ids=list(dark.values()), state=REPORT_ONLY
            ),
            wave_driven=True,
            groups_by_wave=dark,
        )
    )
    if config.require_mfa_registration:
        body = require_mfa_registration(name("registration"), exclusions, state=state)
        desired.append(DesiredPolicy("registration", body))
    if config.admin_policy.enabled:
        body = admin_azure_management(
            name("admins"),
            exclusions,
            role_ids=config.admin_policy.roles,
            require_compliant_device=config.admin_policy.require_compliant_device,
            state=state,
        )
        desired.append(DesiredPolicy("admins", body))
    if config.high_risk_apps:
        body = mfa_for_apps(name("high-risk-apps"), exclusions, app_ids=config.high_risk_apps, state=state)
        desired.append(DesiredPolicy("high-risk-apps", body))
    return desired
