"""The desired WaveGuard policies, rendered from the plan, the tenant's ids and the wave states.

WaveGuard recognises its own policies by display name: every name starts with
``policies.namePrefix`` (default ``"WaveGuard - "``). Policies without the prefix are never
read as WaveGuard's, never changed and never deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from shared.config import RolloutPlan
from shared.rollout.policies.locations import COUNTRIES_KEY, pending, trusted_key
from shared.rollout.policies.templates import (
    ENABLED,
    REPORT_ONLY,
    Exclusions,
    PolicyBody,
    PolicyState,
    admin_mfa,
    block_legacy_authentication,
    mfa_for_apps,
    outside_locations,
    require_mfa,
    require_mfa_registration,
    sign_in_risk,
    user_risk,
)
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import AsyncKeyValuePort

__all__ = [
    "DARK_PHASES",
    "LEGACY_TITLES",
    "POLICY_TITLES",
    "REPORT_ONLY_SUFFIX",
    "SOAKED_PAIRS",
    "DesiredPolicy",
    "TenantIds",
    "legacy_policies",
    "read_wave_states",
    "render_policies",
]

# Waves whose members are watched (report-only) but not yet enforced.
DARK_PHASES: Final = frozenset({WaveState.REGISTERING, WaveState.REPORT_ONLY})

# A wave-driven policy's twin holds the waves in their dark phase, always report-only.
REPORT_ONLY_SUFFIX: Final = " (report-only waves)"
# The wave-driven pairs (key -> title of the enforcing one; the twin adds the suffix).
_WAVE_DRIVEN: Final = {
    "mfa": "Require MFA",
    "sign-in-risk-block": "Sign-in risk: block",
    "sign-in-risk-mfa": "Sign-in risk: require MFA",
    "user-risk": "User risk: require password change",
    "countries": "Sign-ins outside allowed countries",
}
# The pairs whose enforcing policy takes a wave only after its group has soaked in the twin (a wave's
# gates.minSoakDays, from when the group first went into that twin): a new block or risk condition
# gets its own report-only period even for waves the MFA policy already enforces. The MFA pair's
# soak is the wave's own report-only phase (its promotion gates).
SOAKED_PAIRS: Final = frozenset({"sign-in-risk-block", "sign-in-risk-mfa", "user-risk", "countries"})
_TWINS: Final = {f"{key}-report-only": title + REPORT_ONLY_SUFFIX for key, title in _WAVE_DRIVEN.items()}
# Names after the prefix; stable, because the name is how WaveGuard finds its policies again.
POLICY_TITLES: Final = {
    "legacy": "Block legacy authentication",
    "mfa": _WAVE_DRIVEN["mfa"],
    "mfa-report-only": _TWINS["mfa-report-only"],
    "registration": "Require MFA registration",
    "admins": "Administrators: MFA and compliant device on every app",
    "high-risk-apps": "MFA for high-risk apps",
    **{key: title for key, title in _WAVE_DRIVEN.items() if key != "mfa"},
    **{key: title for key, title in _TWINS.items() if key != "mfa-report-only"},
}


# Titles WaveGuard used before (key -> title). A live policy with one is still WaveGuard's: kept
# managed (its break-glass exclusions kept current; its scope, controls and state never changed)
# until the operator deletes it, and plan/apply say so.
LEGACY_TITLES: Final = {
    "admins-legacy": "Administrators: MFA and compliant device for Azure management",
}
LEGACY_ADVICE: Final = {
    "admins-legacy": "legacy admin policy: delete it once the new one ({new}) is enabled",
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


# A wave-driven template: (name, group ids, state) -> body.
_Template = Callable[[str, Sequence[str], PolicyState], PolicyBody]


def render_policies(
    plan: RolloutPlan,
    tenant: TenantIds,
    wave_states: Mapping[str, WaveState],
    location_ids: Mapping[str, str] | None = None,
    soaked: Mapping[str, Collection[str]] | None = None,
) -> list[DesiredPolicy]:
    """The baseline for this plan: legacy block, MFA (enforced + report-only twin), registration,
    administrators, MFA for high-risk apps when configured, then the optional sign-in risk, user
    risk and allowed-countries pairs. All exclude break-glass.

    ``location_ids`` maps each named location key (``locations.render_locations``) to its id; one
    not given is referenced by its pending stand-in (the apply creates it first).

    ``soaked`` maps each pair of ``SOAKED_PAIRS`` to the waves whose group has been in its twin for
    the wave's ``gates.minSoakDays`` (``soak.read_soak``); an enforced wave not in it stays in the
    twin (report-only). None: no wave has soaked yet.
    """
    config = plan.policies
    exclusions = Exclusions(
        tuple(sorted(tenant.break_glass_user_ids)),
        (tenant.exclusion_group_id,) if tenant.exclusion_group_id else (),
    )
    state: PolicyState = config.state
    ids = dict(location_ids or {})

    def name(key: str) -> str:
        return config.name_prefix + POLICY_TITLES[key]

    def location(key: str) -> str:
        return ids.get(key) or pending(key)

    enforced = _wave_groups(tenant, wave_states, frozenset({WaveState.ENFORCED}))
    dark = _wave_groups(tenant, wave_states, DARK_PHASES)

    def pair(key: str, template: _Template) -> list[DesiredPolicy]:
        # A wave promotion is what enables the enforcing policy; with no enforced wave it stays dark.
        enforcing_waves, twin_waves = dict(enforced), dict(dark)
        if key in SOAKED_PAIRS:
            ready = set((soaked or {}).get(key, ()))
            enforcing_waves = {w: g for w, g in enforced.items() if w in ready}
            twin_waves.update({w: g for w, g in enforced.items() if w not in ready})
        enforcing = template(name(key), list(enforcing_waves.values()), ENABLED if enforcing_waves else state)
        twin = template(name(f"{key}-report-only"), list(twin_waves.values()), REPORT_ONLY)
        return [
            DesiredPolicy(key, enforcing, wave_driven=True, groups_by_wave=enforcing_waves),
            DesiredPolicy(f"{key}-report-only", twin, wave_driven=True, groups_by_wave=twin_waves),
        ]

    trusted = [location(trusted_key(t.name)) for t in config.trusted_locations]
    desired: list[DesiredPolicy] = []
    if config.block_legacy_auth:
        desired.append(
            DesiredPolicy("legacy", block_legacy_authentication(name("legacy"), exclusions, state=state))
        )
    desired += pair(
        "mfa",
        lambda n, groups, s: require_mfa(
            n,
            exclusions,
            group_ids=groups,
            state=s,
            satisfied_by=config.require_mfa.satisfied_by,
            trusted_location_ids=trusted,
        ),
    )
    if config.require_mfa_registration:
        body = require_mfa_registration(name("registration"), exclusions, state=state)
        desired.append(DesiredPolicy("registration", body))
    if config.admin_policy.enabled:
        body = admin_mfa(
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
    desired += _risk_pairs(plan, pair, exclusions)
    countries = config.allowed_countries
    if countries.enabled:
        allowed = [location(COUNTRIES_KEY), *trusted]
        desired += pair(
            "countries",
            lambda n, groups, s: outside_locations(
                n,
                exclusions,
                group_ids=groups,
                allowed_location_ids=allowed,
                block=countries.outside == "block",
                state=s,
            ),
        )
    return desired


def _risk_pairs(
    plan: RolloutPlan, pair: Callable[[str, _Template], list[DesiredPolicy]], exclusions: Exclusions
) -> list[DesiredPolicy]:
    risk, users = plan.policies.sign_in_risk, plan.policies.user_risk
    desired: list[DesiredPolicy] = []
    if risk.enabled:
        for key, levels, block in (
            ("sign-in-risk-block", risk.block_levels, True),
            ("sign-in-risk-mfa", risk.mfa_levels, False),
        ):
            if levels:
                desired += pair(key, _sign_in_risk_template(exclusions, levels, block=block))
    if users.enabled:
        desired += pair(
            "user-risk",
            lambda n, groups, s: user_risk(n, exclusions, group_ids=groups, levels=users.levels, state=s),
        )
    return desired


def _sign_in_risk_template(exclusions: Exclusions, levels: Sequence[str], *, block: bool) -> _Template:
    def build(name: str, groups: Sequence[str], state: PolicyState) -> PolicyBody:
        return sign_in_risk(name, exclusions, group_ids=groups, levels=levels, block=block, state=state)

    return build


def _without_nulls(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def legacy_policies(
    plan: RolloutPlan, tenant: TenantIds, live: Sequence[PolicyBody]
) -> list[tuple[DesiredPolicy, str]]:
    """Each live policy carrying a legacy WaveGuard title, as a desired policy that is the live one
    with the current break-glass exclusions (nothing else changes, the state is kept), and the line
    plan/apply print about it."""
    config = plan.policies
    found: list[tuple[DesiredPolicy, str]] = []
    for key, title in LEGACY_TITLES.items():
        name = (config.name_prefix + title).casefold()
        policy = next((p for p in live if str(p.get("displayName") or "").casefold() == name), None)
        if policy is None:
            continue
        body: PolicyBody = {
            k: copy.deepcopy(_without_nulls(v))
            for k, v in policy.items()
            if k in ("displayName", "state", "conditions", "grantControls", "sessionControls")
            and v is not None
        }
        users = body.setdefault("conditions", {}).setdefault("users", {})
        # Added to what it excludes (an operator's own exclusions there stay).
        group = [tenant.exclusion_group_id] if tenant.exclusion_group_id else []
        for field_, ids in (("excludeUsers", tenant.break_glass_user_ids), ("excludeGroups", group)):
            have = [str(v) for v in users.get(field_) or []]
            users[field_] = have + sorted(set(ids) - {v.lower() for v in have})
        advice = LEGACY_ADVICE[key].format(new=repr(config.name_prefix + POLICY_TITLES["admins"]))
        found.append(
            (DesiredPolicy(key, body), f"{policy.get('displayName')!r} [{policy.get('id')}]: {advice}")
        )
    return found
