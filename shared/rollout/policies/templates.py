"""Conditional Access policy templates in Graph's ``conditionalAccessPolicy`` JSON shape.

Each template returns the body WaveGuard sends to ``POST /identity/conditionalAccess/policies``
(without ``id`` and the server-managed timestamps). Every template takes the break-glass
exclusions: there is no way to build a WaveGuard policy without them (see docs/architecture.md,
'Break-glass' under 'Safety rules').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "ALL",
    "ALL_TRUSTED",
    "AZURE_MANAGEMENT_APP_ID",
    "ENABLED",
    "EVERY_TIME",
    "LEGACY_CLIENT_APP_TYPES",
    "NONE",
    "REGISTER_SECURITY_INFO",
    "REPORT_ONLY",
    "RISK_LEVELS",
    "Exclusions",
    "PolicyBody",
    "PolicyState",
    "admin_mfa",
    "block_legacy_authentication",
    "mfa_for_apps",
    "outside_locations",
    "require_mfa",
    "require_mfa_registration",
    "sign_in_risk",
    "user_risk",
]

PolicyBody = dict[str, Any]
PolicyState = Literal["enabled", "disabled", "enabledForReportingButNotEnforced"]

REPORT_ONLY: Final = "enabledForReportingButNotEnforced"
ENABLED: Final = "enabled"
# Graph's special values in includeUsers / includeApplications.
ALL: Final = "All"
NONE: Final = "None"
# Graph's special value in includeLocations / excludeLocations: every location marked trusted.
ALL_TRUSTED: Final = "AllTrusted"
# Graph's riskLevel values a policy condition takes, lowest first.
RISK_LEVELS: Final = ("low", "medium", "high")
# Sign-in frequency "every time": a risky sign-in proves itself afresh (an MFA claim already in the
# session does not count), as in Microsoft's risk-based policy templates.
EVERY_TIME: Final = {
    "signInFrequency": {
        "isEnabled": True,
        "frequencyInterval": "everyTime",
        "authenticationType": "primaryAndSecondaryAuthentication",
    }
}
# "Windows Azure Service Management API": Azure portal, ARM, CLI and PowerShell.
AZURE_MANAGEMENT_APP_ID: Final = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
# The user action "Register security information" (MFA / SSPR registration).
REGISTER_SECURITY_INFO: Final = "urn:user:registersecurityinfo"
# Client app types that cannot do modern authentication (and so cannot do MFA).
LEGACY_CLIENT_APP_TYPES: Final = ("exchangeActiveSync", "other")


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Who every WaveGuard policy leaves out: the break-glass accounts and the exclusion group."""

    user_ids: tuple[str, ...]
    group_ids: tuple[str, ...]


def _users(
    exclusions: Exclusions,
    *,
    include_users: Sequence[str] = (),
    include_groups: Sequence[str] = (),
    include_roles: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "includeUsers": list(include_users),
        "excludeUsers": list(exclusions.user_ids),
        "includeGroups": list(include_groups),
        "excludeGroups": list(exclusions.group_ids),
        "includeRoles": list(include_roles),
        "excludeRoles": [],
    }


def _applications(*, include: Sequence[str] = (), user_actions: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "includeApplications": list(include),
        "excludeApplications": [],
        "includeUserActions": list(user_actions),
    }


def _grant(*controls: str, operator: Literal["AND", "OR"] = "OR") -> dict[str, Any]:
    return {"operator": operator, "builtInControls": list(controls)}


def _policy(
    name: str,
    state: PolicyState,
    users: dict[str, Any],
    applications: dict[str, Any],
    grant: dict[str, Any],
    client_app_types: Sequence[str] = ("all",),
    *,
    extra_conditions: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
) -> PolicyBody:
    # Optional conditions and session controls are left out when unused, so the baseline without
    # them reads (and diffs) exactly as before they existed.
    body: PolicyBody = {
        "displayName": name,
        "state": state,
        "conditions": {
            "users": users,
            "applications": applications,
            "clientAppTypes": list(client_app_types),
            **(extra_conditions or {}),
        },
        "grantControls": grant,
    }
    if session:
        body["sessionControls"] = session
    return body


def _wave_users(exclusions: Exclusions, group_ids: Sequence[str]) -> dict[str, Any]:
    """The wave groups (``None`` while there are none yet: Graph needs an include)."""
    return _users(exclusions, include_users=[] if group_ids else [NONE], include_groups=sorted(group_ids))


def _locations_outside(location_ids: Sequence[str]) -> dict[str, Any]:
    return {"locations": {"includeLocations": [ALL], "excludeLocations": sorted(location_ids)}}


def _levels(levels: Sequence[str]) -> list[str]:
    return sorted(set(levels), key=RISK_LEVELS.index)


def block_legacy_authentication(name: str, exclusions: Exclusions, *, state: PolicyState) -> PolicyBody:
    """All users, all apps, Exchange ActiveSync and other legacy clients: block."""
    return _policy(
        name,
        state,
        _users(exclusions, include_users=[ALL]),
        _applications(include=[ALL]),
        _grant("block"),
        LEGACY_CLIENT_APP_TYPES,
    )


def require_mfa(
    name: str,
    exclusions: Exclusions,
    *,
    group_ids: Sequence[str],
    state: PolicyState,
    satisfied_by: Sequence[str] = (),
    trusted_location_ids: Sequence[str] = (),
) -> PolicyBody:
    """MFA for every app for the members of ``group_ids`` (``None`` when there are no groups yet).

    ``satisfied_by`` (``compliantDevice``, ``domainJoinedDevice``) may stand in for MFA (grant
    ``OR``); sign-ins from ``trusted_location_ids`` are not asked at all (excluded locations).
    """
    extra = _locations_outside(trusted_location_ids) if trusted_location_ids else None
    return _policy(
        name,
        state,
        _wave_users(exclusions, group_ids),
        _applications(include=[ALL]),
        _grant("mfa", *satisfied_by),
        extra_conditions=extra,
    )


def require_mfa_registration(name: str, exclusions: Exclusions, *, state: PolicyState) -> PolicyBody:
    """MFA to register security info; a Temporary Access Pass satisfies it for new users."""
    return _policy(
        name,
        state,
        _users(exclusions, include_users=[ALL]),
        _applications(user_actions=[REGISTER_SECURITY_INFO]),
        _grant("mfa"),
    )


def admin_mfa(
    name: str,
    exclusions: Exclusions,
    *,
    role_ids: Sequence[str],
    require_compliant_device: bool,
    state: PolicyState,
) -> PolicyBody:
    """Directory roles on every app: MFA, and a compliant device when configured (grant ``AND``).

    Never relaxed: no device alternative to MFA, no trusted location (lint WG-CA-07).
    """
    grant = _grant("mfa", "compliantDevice", operator="AND") if require_compliant_device else _grant("mfa")
    return _policy(
        name,
        state,
        _users(exclusions, include_roles=sorted(role_ids)),
        _applications(include=[ALL]),
        grant,
    )


def mfa_for_apps(
    name: str, exclusions: Exclusions, *, app_ids: Sequence[str], state: PolicyState
) -> PolicyBody:
    """MFA for everyone on the given (high-risk) applications, whatever their wave."""
    return _policy(
        name,
        state,
        _users(exclusions, include_users=[ALL]),
        _applications(include=sorted(app_ids)),
        _grant("mfa"),
    )


def sign_in_risk(
    name: str,
    exclusions: Exclusions,
    *,
    group_ids: Sequence[str],
    levels: Sequence[str],
    block: bool,
    state: PolicyState,
) -> PolicyBody:
    """Sign-ins Identity Protection rates at ``levels``: blocked, or MFA at every such sign-in."""
    return _policy(
        name,
        state,
        _wave_users(exclusions, group_ids),
        _applications(include=[ALL]),
        _grant("block") if block else _grant("mfa"),
        extra_conditions={"signInRiskLevels": _levels(levels)},
        session=None if block else EVERY_TIME,
    )


def user_risk(
    name: str, exclusions: Exclusions, *, group_ids: Sequence[str], levels: Sequence[str], state: PolicyState
) -> PolicyBody:
    """Users Identity Protection rates at ``levels``: MFA AND a secure password change, which
    remediates the user's risk. Graph takes ``passwordChange`` only so: with ``mfa``, operator
    ``AND``, on all apps."""
    return _policy(
        name,
        state,
        _wave_users(exclusions, group_ids),
        _applications(include=[ALL]),
        _grant("mfa", "passwordChange", operator="AND"),
        extra_conditions={"userRiskLevels": _levels(levels)},
        session=EVERY_TIME,
    )


def outside_locations(
    name: str,
    exclusions: Exclusions,
    *,
    group_ids: Sequence[str],
    allowed_location_ids: Sequence[str],
    block: bool,
    state: PolicyState,
) -> PolicyBody:
    """Sign-ins from anywhere but ``allowed_location_ids``: blocked, or MFA."""
    return _policy(
        name,
        state,
        _wave_users(exclusions, group_ids),
        _applications(include=[ALL]),
        _grant("block") if block else _grant("mfa"),
        extra_conditions=_locations_outside(allowed_location_ids),
    )
