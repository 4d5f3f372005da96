"""Application permissions: what the app holds (from infra/) and what each emulated route requires.

What the app holds comes from the repository's single source of truth, ``infra/graph-permissions.json``
(one entry per permission: an entry whose ``parameter`` is null is always granted, otherwise it is
granted when that ``infra/main.bicep`` parameter has that value). The parameters' values are the
defaults declared in ``infra/main.bicep`` (``param NAME TYPE = DEFAULT``), so the emulator grants
exactly what a default deployment grants; ``overrides`` change a switch (``enableDestructiveResponses
=true``).

What each route requires is Microsoft Graph's permission reference for **application** access: the
least privileged permission plus the higher privileged ones the reference lists as also accepted.
A requirement is a tuple of alternatives, each a set of permissions that are all required; the
empty set is "no permission needed" (``POST /$batch``: its items are checked one by one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PERMISSIONS_FILE = REPO_ROOT / "infra" / "graph-permissions.json"
BICEP_FILE = REPO_ROOT / "infra" / "main.bicep"

# A request carrying this header acts as a person in the portal (every permission): the test
# harness and the demo use it for writes the app could never make. The app never sends it.
ADMIN_CALLER_HEADER = "x-emulator-caller"
ADMIN_CALLER_VALUE = "tenant-admin"
ADMIN_HEADERS: dict[str, str] = {ADMIN_CALLER_HEADER: ADMIN_CALLER_VALUE}

Requirement = tuple[frozenset[str], ...]

DENIED_CODE = "Authorization_RequestDenied"
DENIED_MESSAGE = "Insufficient privileges to complete the operation."
EXCHANGE_DENIED_CODE = "ErrorAccessDenied"
EXCHANGE_DENIED_MESSAGE = "Access is denied. Check credentials and try again."


@dataclass(frozen=True)
class PermissionEntry:
    """One entry of infra/graph-permissions.json."""

    permission: str
    app_role_id: str
    parameter: str | None
    value: Any


def load_entries(path: Path = PERMISSIONS_FILE) -> list[PermissionEntry]:
    """The entries of the permissions file, in file order."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        PermissionEntry(
            str(item["permission"]), str(item["appRoleId"]), item.get("parameter"), item.get("value")
        )
        for item in raw
    ]


_PARAM = re.compile(r"^param\s+(\w+)\s+(\w+)\s*=\s*(.+?)\s*$", re.MULTILINE)


def bicep_defaults(path: Path = BICEP_FILE) -> dict[str, Any]:
    """The scalar defaults of ``param NAME TYPE = DEFAULT`` lines (bool, int, quoted string)."""
    defaults: dict[str, Any] = {}
    for name, kind, default in _PARAM.findall(path.read_text(encoding="utf-8")):
        parsed = _parse_scalar(kind, default)
        if parsed is not None:
            defaults[name] = parsed
    return defaults


def _parse_scalar(kind: str, text: str) -> Any:
    text = text.split("//", 1)[0].strip()
    if kind == "bool" and text in ("true", "false"):
        return text == "true"
    if kind == "int" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if kind == "string" and len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return None


def parse_grant(flag: str, defaults: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    """``PARAM=VALUE`` as a parameter name and a value of the parameter's type.

    Raises:
        ValueError: no '=', an unknown parameter or a value that does not fit its type.
    """
    name, sep, text = flag.partition("=")
    name, text = name.strip(), text.strip()
    known = bicep_defaults() if defaults is None else defaults
    if not sep or not name:
        raise ValueError(f"--grant expects PARAM=VALUE, got {flag!r}")
    if name not in known:
        raise ValueError(f"--grant: {name!r} is not a parameter of infra/main.bicep")
    current = known[name]
    if isinstance(current, bool):
        if text not in ("true", "false"):
            raise ValueError(f"--grant {name} expects true or false, got {text!r}")
        return name, text == "true"
    if isinstance(current, int):
        return name, int(text)
    return name, text


def all_permissions(entries: Iterable[PermissionEntry] | None = None) -> frozenset[str]:
    """Every permission of the file, whatever the switches."""
    return frozenset(entry.permission for entry in (entries if entries is not None else load_entries()))


def infra_permissions(overrides: Mapping[str, Any] | None = None) -> frozenset[str]:
    """What a deployment with the template's defaults (and these switches changed) grants.

    Raises:
        ValueError: an override names a parameter the template does not declare.
    """
    values = bicep_defaults()
    for name in overrides or {}:
        if name not in values:
            raise ValueError(f"{name!r} is not a parameter of infra/main.bicep")
    values.update(overrides or {})
    return frozenset(
        entry.permission
        for entry in load_entries()
        if entry.parameter is None or values.get(entry.parameter) == entry.value
    )


def resolve_permissions(spec: str = "infra", grants: Iterable[str] = ()) -> frozenset[str]:
    """The permissions of the ``--permissions infra|all|A,B,C`` and ``--grant PARAM=VALUE`` options.

    Raises:
        ValueError: grants combined with an explicit list, or an invalid grant.
    """
    grants = list(grants)
    if spec == "all":
        if grants:
            raise ValueError("--grant applies to --permissions infra only")
        return all_permissions()
    if spec == "infra":
        defaults = bicep_defaults()
        return infra_permissions(dict(parse_grant(flag, defaults) for flag in grants))
    if grants:
        raise ValueError("--grant applies to --permissions infra only")
    return frozenset(name.strip() for name in spec.split(",") if name.strip())


# What a granted permission lets the app do besides itself (a ReadWrite covers its Read).
IMPLIED: dict[str, frozenset[str]] = {
    "GroupMember.ReadWrite.All": frozenset({"GroupMember.Read.All"}),
    "UserAuthenticationMethod.ReadWrite.All": frozenset(
        {
            "UserAuthenticationMethod.Read.All",
            "UserAuthMethod-TAP.ReadWrite.All",
            "UserAuthMethod-TAP.Read.All",
        }
    ),
    "UserAuthMethod-TAP.ReadWrite.All": frozenset({"UserAuthMethod-TAP.Read.All"}),
    "IdentityRiskyUser.ReadWrite.All": frozenset({"IdentityRiskyUser.Read.All"}),
    "Mail.ReadWrite": frozenset({"Mail.Read", "Mail.ReadBasic.All"}),
    "Directory.ReadWrite.All": frozenset({"Directory.Read.All"}),
}


def effective(granted: Iterable[str]) -> frozenset[str]:
    """The granted permissions with what each one implies."""
    result = set(granted)
    for name in list(result):
        result |= IMPLIED.get(name, frozenset())
    return frozenset(result)


def any_of(*names: str) -> Requirement:
    return tuple(frozenset({name}) for name in names)


def all_of(*names: str) -> Requirement:
    return (frozenset(names),)


NONE: Requirement = (frozenset(),)
USER_READ = any_of("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
USER_MEMBERSHIPS = any_of(
    "User.Read.All", "Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "GroupMember.Read.All"
)
GROUP_READ = any_of(
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
MEMBER_READ = any_of(
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
)
MEMBER_WRITE = any_of("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")
GROUP_CREATE = any_of("Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All")
GROUP_WRITE = any_of("Group.ReadWrite.All", "Directory.ReadWrite.All")
# Graph accepts only the read permission of the resource for a subscription, not a write one.
GROUP_SUBSCRIPTION = any_of("Group.Read.All")
AUTH_METHODS_READ = any_of("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All")
TAP_READ = any_of(
    "UserAuthMethod-TAP.Read.All",
    "UserAuthMethod-TAP.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
)
TAP_WRITE = any_of("UserAuthMethod-TAP.ReadWrite.All", "UserAuthenticationMethod.ReadWrite.All")
CA_READ = any_of("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess")
CA_WRITE = all_of("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "Application.Read.All")
CA_DELETE = any_of("Policy.ReadWrite.ConditionalAccess")
NAMED_LOCATION_WRITE = all_of("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess")
AUDIT_REPORTS = any_of("AuditLog.Read.All")
SIGN_INS = any_of("AuditLog.Read.All", "Directory.Read.All")
RISK_DETECTIONS = any_of("IdentityRiskEvent.Read.All")
RISKY_USERS_READ = any_of("IdentityRiskyUser.Read.All")
RISKY_USERS_WRITE = any_of("IdentityRiskyUser.ReadWrite.All")
REVOKE_SESSIONS = any_of("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
MAIL_SEND = any_of("Mail.Send")
MAIL_WRITE = any_of("Mail.ReadWrite")
MAIL_READ = any_of("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite")

TAP_BASE = "/users/{user_id}/authentication/temporaryAccessPassMethods"
CA_BASE = "/identity/conditionalAccess/policies"
NAMED_LOCATIONS_BASE = "/identity/conditionalAccess/namedLocations"
REGISTRATION_BASE = "/reports/authenticationMethods/userRegistrationDetails"
PER_USER_MFA_BASE = "/users/{user_id}/authentication/requirements"

# Every Graph route the emulator serves (method, pattern as registered, whatever API versions serve
# it: a beta-only route is keyed the same way) and what it requires.
REQUIREMENTS: dict[tuple[str, str], Requirement] = {
    ("POST", "/$batch"): NONE,
    # users
    ("GET", "/users"): USER_READ,
    ("GET", "/users/$count"): USER_READ,
    ("GET", "/users/{user_id}"): USER_READ,
    ("GET", "/users/{user_id}/manager"): USER_READ,
    ("GET", "/users/{user_id}/memberOf"): USER_MEMBERSHIPS,
    ("GET", "/users/{user_id}/transitiveMemberOf/microsoft.graph.directoryRole"): USER_MEMBERSHIPS,
    ("GET", "/users/delta"): USER_READ,
    # groups
    ("GET", "/groups"): GROUP_READ,
    ("GET", "/groups/$count"): GROUP_READ,
    ("GET", "/groups/{group_id}"): GROUP_READ,
    ("GET", "/groups/delta"): GROUP_READ,
    ("POST", "/groups"): GROUP_CREATE,
    ("PATCH", "/groups/{group_id}"): GROUP_WRITE,
    ("DELETE", "/groups/{group_id}"): GROUP_WRITE,
    # members
    ("GET", "/groups/{group_id}/members"): MEMBER_READ,
    ("GET", "/groups/{group_id}/members/$count"): MEMBER_READ,
    ("GET", "/groups/{group_id}/members/$ref"): MEMBER_READ,
    ("POST", "/groups/{group_id}/members/$ref"): MEMBER_WRITE,
    ("DELETE", "/groups/{group_id}/members/{member_id}/$ref"): MEMBER_WRITE,
    ("DELETE", "/groups/{group_id}/members/$ref"): MEMBER_WRITE,
    # authentication methods
    ("GET", "/users/{user_id}/authentication/methods"): AUTH_METHODS_READ,
    ("POST", TAP_BASE): TAP_WRITE,
    ("GET", TAP_BASE): TAP_READ,
    ("GET", TAP_BASE + "/{method_id}"): TAP_READ,
    ("DELETE", TAP_BASE + "/{method_id}"): TAP_WRITE,
    # mail (Exchange)
    ("POST", "/users/{user_id}/sendMail"): MAIL_SEND,
    ("POST", "/users/{user_id}/messages"): MAIL_WRITE,
    ("GET", "/users/{user_id}/messages/{message_id}"): MAIL_READ,
    ("POST", "/users/{user_id}/messages/{message_id}/send"): MAIL_SEND,
    ("DELETE", "/users/{user_id}/messages/{message_id}"): MAIL_WRITE,
    # Conditional Access
    ("GET", CA_BASE): CA_READ,
    ("GET", CA_BASE + "/{policy_id}"): CA_READ,
    ("POST", CA_BASE): CA_WRITE,
    ("PATCH", CA_BASE + "/{policy_id}"): CA_WRITE,
    ("DELETE", CA_BASE + "/{policy_id}"): CA_DELETE,
    # named locations: the same permissions as the policies (Graph's reference for namedLocation)
    ("GET", NAMED_LOCATIONS_BASE): CA_READ,
    ("GET", NAMED_LOCATIONS_BASE + "/{location_id}"): CA_READ,
    ("POST", NAMED_LOCATIONS_BASE): NAMED_LOCATION_WRITE,
    ("PATCH", NAMED_LOCATIONS_BASE + "/{location_id}"): NAMED_LOCATION_WRITE,
    ("DELETE", NAMED_LOCATIONS_BASE + "/{location_id}"): NAMED_LOCATION_WRITE,
    # reports and audit logs
    ("GET", REGISTRATION_BASE): AUDIT_REPORTS,
    ("GET", REGISTRATION_BASE + "/{user_id}"): AUDIT_REPORTS,
    ("GET", "/auditLogs/signIns"): SIGN_INS,
    ("GET", "/auditLogs/signIns/{sign_in_id}"): SIGN_INS,
    # change notifications (groups are the only resource the emulator accepts)
    ("POST", "/subscriptions"): GROUP_SUBSCRIPTION,
    ("GET", "/subscriptions"): GROUP_SUBSCRIPTION,
    ("GET", "/subscriptions/{subscription_id}"): GROUP_SUBSCRIPTION,
    ("PATCH", "/subscriptions/{subscription_id}"): GROUP_SUBSCRIPTION,
    ("DELETE", "/subscriptions/{subscription_id}"): GROUP_SUBSCRIPTION,
    ("POST", "/subscriptions/{subscription_id}/reauthorize"): GROUP_SUBSCRIPTION,
    # Identity Protection and session revocation
    ("GET", "/identityProtection/riskDetections"): RISK_DETECTIONS,
    ("GET", "/identityProtection/riskDetections/{detection_id}"): RISK_DETECTIONS,
    ("GET", "/identityProtection/riskyUsers"): RISKY_USERS_READ,
    ("GET", "/identityProtection/riskyUsers/{user_id}"): RISKY_USERS_READ,
    ("POST", "/identityProtection/riskyUsers/confirmCompromised"): RISKY_USERS_WRITE,
    ("POST", "/identityProtection/riskyUsers/dismiss"): RISKY_USERS_WRITE,
    ("POST", "/users/{user_id}/revokeSignInSessions"): REVOKE_SESSIONS,
    # tenant settings (the Conditional Access preflight)
    ("GET", "/policies/identitySecurityDefaultsEnforcementPolicy"): any_of(
        "Policy.Read.All", "Policy.ReadWrite.SecurityDefaults"
    ),
    ("GET", "/subscribedSkus"): any_of(
        "LicenseAssignment.Read.All",
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
    ("GET", "/policies/authenticationMethodsPolicy"): any_of(
        "Policy.Read.AuthenticationMethod", "Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"
    ),
    # per-user MFA state (beta only: /beta/users/{id}/authentication/requirements)
    ("GET", PER_USER_MFA_BASE): any_of("Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"),
    ("PATCH", PER_USER_MFA_BASE): any_of("Policy.ReadWrite.AuthenticationMethod"),
}

# PATCH /groups/{id} whose body only adds members (members@odata.bind) is the "add members" API.
MEMBERS_ONLY_PATCH = ("PATCH", "/groups/{group_id}")
# Routes where the app may also act as the owner of a group it created (Group.Create).
OWNER_ROUTES = frozenset({("PATCH", "/groups/{group_id}"), ("DELETE", "/groups/{group_id}")})
OWNER_PERMISSION = "Group.Create"
# Exchange Online answers refusals with its own error.
EXCHANGE_ROUTES = frozenset(
    key for key in REQUIREMENTS if "/messages" in key[1] or key[1].endswith("/sendMail")
)


def satisfied(requirement: Requirement, granted: Iterable[str]) -> bool:
    """Whether the granted permissions (with what they imply) meet one of the alternatives."""
    have = effective(granted)
    return any(alternative <= have for alternative in requirement)


def is_tenant_admin(headers: Mapping[str, str]) -> bool:
    """Whether a request says it comes from a person in the portal (``x-emulator-caller``)."""
    for name, value in headers.items():
        if name.lower() == ADMIN_CALLER_HEADER:
            return value.strip().lower() == ADMIN_CALLER_VALUE
    return False


def allowed(
    method: str,
    pattern: str,
    *,
    granted: Iterable[str],
    params: Mapping[str, str],
    body: Any,
    owned_groups: Iterable[str],
) -> bool:
    """Whether the app, holding ``granted``, may call this route (an unknown route is refused)."""
    key = (method.upper(), pattern)
    requirement = REQUIREMENTS.get(key)
    if requirement is None:
        return False
    granted = frozenset(granted)
    if satisfied(requirement, granted):
        return True
    members_only = isinstance(body, dict) and set(body) == {"members@odata.bind"}
    if key == MEMBERS_ONLY_PATCH and members_only and satisfied(MEMBER_WRITE, granted):
        return True
    if key in OWNER_ROUTES and OWNER_PERMISSION in granted:
        return params.get("group_id", "") in set(owned_groups)
    return False


def denied_error(method: str, pattern: str) -> tuple[str, str]:
    """The error code and message Graph (or Exchange) answers a refused call with."""
    if (method.upper(), pattern) in EXCHANGE_ROUTES:
        return EXCHANGE_DENIED_CODE, EXCHANGE_DENIED_MESSAGE
    return DENIED_CODE, DENIED_MESSAGE
