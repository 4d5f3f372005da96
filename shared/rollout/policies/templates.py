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
    "AZURE_MANAGEMENT_APP_ID",
    "ENABLED",
    "LEGACY_CLIENT_APP_TYPES",
    "NONE",
    "REGISTER_SECURITY_INFO",
    "REPORT_ONLY",
    "Exclusions",
    "PolicyBody",
    "PolicyState",
    "admin_azure_management",
    "block_legacy_authentication",
    "mfa_for_apps",
    "require_mfa",
    "require_mfa_registration",
]

PolicyBody = dict[str, Any]
PolicyState = Literal["enabled", "disabled", "enabledForReportingButNotEnforced"]

REPORT_ONLY: Final = "enabledForReportingButNotEnforced"
ENABLED: Final = "enabled"
# Graph's special values in includeUsers / includeApplications.
ALL: Final = "All"
NONE: Final = "None"
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
) -> PolicyBody:
    return {
        "displayName": name,
        "state": state,
        "conditions": {
            "users": users,
            "applications": applications,
            "clientAppTypes": list(client_app_types),
        },
        "grantControls": grant,
    }


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
    name: str, exclusions: Exclusions, *, group_ids: Sequence[str], state: PolicyState
) -> PolicyBody:
    """MFA for every app for the members of ``group_ids`` (``None`` when there are no groups yet)."""
    users = _users(exclusions, include_users=[] if group_ids else [NONE], include_groups=sorted(group_ids))
    return _policy(name, state, users, _applications(include=[ALL]), _grant("mfa"))


def require_mfa_registration(name: str, exclusions: Exclusions, *, state: PolicyState) -> PolicyBody:
    """MFA to register security info; a Temporary Access Pass satisfies it for new users."""
    return _policy(
        name,
        state,
        _users(exclusions, include_users=[ALL]),
        _applications(user_actions=[REGISTER_SECURITY_INFO]),
        _grant("mfa"),
    )


def admin_azure_management(
    name: str,
    exclusions: Exclusions,
    *,
    role_ids: Sequence[str],
    require_compliant_device: bool,
    state: PolicyState,
) -> PolicyBody:
    """Directory roles reaching Azure management: MFA, and a compliant device when configured."""
    grant = _grant("mfa", "compliantDevice", operator="AND") if require_compliant_device else _grant("mfa")
    return _policy(
        name,
        state,
        _users(exclusions, include_roles=sorted(role_ids)),
        _applications(include=[AZURE_MANAGEMENT_APP_ID]),
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
