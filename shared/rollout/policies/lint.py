"""The safety lint, Maester style: small checks, each with an id, a severity and a message
naming the policy and the field.

The lint runs on two sets: the policies as they will be after the apply (blocking: an error
there refuses the apply) and the live WaveGuard policies as they are now (reported; what the
apply repairs shows up here only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from shared.rollout.policies.locations import is_pending
from shared.rollout.policies.render import POLICY_TITLES, TenantIds
from shared.rollout.policies.templates import (
    ALL,
    ALL_TRUSTED,
    ENABLED,
    LEGACY_CLIENT_APP_TYPES,
    NONE,
    REGISTER_SECURITY_INFO,
    PolicyBody,
)

__all__ = [
    "CHECKS",
    "DOWNGRADED_ON_ROLLBACK",
    "Finding",
    "LintContext",
    "LintReport",
    "ReferenceLookup",
    "Severity",
    "lint_policies",
]

Severity = Literal["error", "warning"]
Scope = Literal["after-apply", "live"]
# Values Graph accepts in includeUsers/excludeUsers that are not object ids.
_SPECIAL_USERS: Final = frozenset({"all", "none", "guestsorexternalusers"})
# Location values that are not named location ids ("MFA trusted IPs" is the legacy all-zero id).
_SPECIAL_LOCATIONS: Final = frozenset(
    {ALL.lower(), ALL_TRUSTED.lower(), "00000000-0000-0000-0000-000000000000"}
)
# Application values that do not name one application.
_APP_KEYWORDS: Final = frozenset({ALL.lower(), NONE.lower()})


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check on one policy (or on the set, when ``policy`` is None)."""

    check: str
    severity: Severity
    policy: str | None
    field: str | None
    message: str
    scope: Scope = "after-apply"

    def __str__(self) -> str:
        where = f"{self.policy!r}" if self.policy else "baseline"
        at = f" {self.field}" if self.field else ""
        return f"[{self.check}] {self.severity}: {where}{at}: {self.message}"


@dataclass(frozen=True, slots=True)
class LintReport:
    """Every finding; the apply is refused when ``blocking``."""

    findings: tuple[Finding, ...]
    # The apply only takes enforcement away: DOWNGRADED_ON_ROLLBACK checks warned instead of blocking.
    reduces_only: bool = False

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error" and f.scope == "after-apply")

    @property
    def ok(self) -> bool:
        return not self.blocking


class ReferenceLookup(Protocol):
    """Which of these object ids do not exist in the tenant (deleted or never there)."""

    async def missing_users(self, ids: Iterable[str]) -> set[str]: ...

    async def missing_groups(self, ids: Iterable[str]) -> set[str]: ...

    async def missing_roles(self, ids: Iterable[str]) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class LintContext:
    """What the checks need besides the policies themselves."""

    tenant: TenantIds
    missing_users: frozenset[str]
    missing_groups: frozenset[str]
    missing_roles: frozenset[str]
    # True when WaveGuard has seen this policy id in report-only (KV record or live state).
    was_report_only: Callable[[str], bool]
    legacy_block_wanted: bool = True
    registration_wanted: bool = True
    # The tenant preflight's licence-p2 finding: True, False (only P1), None (not known).
    licence_p2: bool | None = None
    # Every named location id in the tenant; None when they were not read (WG-CA-09 is skipped).
    location_ids: frozenset[str] | None = None
    # (name, field, message) of named locations the apply cannot repair (WG-CA-10).
    location_problems: tuple[tuple[str, str, str], ...] = ()
    # Why the licences could not be read (the preflight's "licence" finding), when they could not.
    licence_unreadable: str | None = None
    # What guards a relaxed Require MFA policy (WG-CA-07): the plan's prefix, whether it wants the
    # administrators' policy and with which roles, and the high-risk apps.
    name_prefix: str = "WaveGuard - "
    admin_policy_wanted: bool = True
    admin_roles: frozenset[str] = frozenset()
    high_risk_apps: frozenset[str] = frozenset()
    # True when this apply only takes enforcement away (a rollback): the checks in
    # ``DOWNGRADED_ON_ROLLBACK`` then warn instead of blocking, so a rollback always goes through.
    reduces_only: bool = False


PolicyCheck = Callable[[PolicyBody, LintContext], list[tuple[str, str]]]
SetCheck = Callable[[Sequence[PolicyBody], LintContext], list[tuple[str | None, str | None, str]]]


def _users(policy: PolicyBody) -> Mapping[str, Any]:
    return ((policy.get("conditions") or {}).get("users")) or {}


def _apps(policy: PolicyBody) -> Mapping[str, Any]:
    return ((policy.get("conditions") or {}).get("applications")) or {}


def _ids(value: Any) -> set[str]:
    return {str(v).lower() for v in (value or [])}


def check_break_glass_excluded(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-01: every break-glass account and the exclusion group are excluded."""
    users = _users(policy)
    problems: list[tuple[str, str]] = []
    excluded_users = _ids(users.get("excludeUsers"))
    for user_id in ctx.tenant.break_glass_user_ids:
        if user_id.lower() not in excluded_users:
            problems.append(
                ("conditions.users.excludeUsers", f"break-glass account {user_id} is not excluded")
            )
    group_id = ctx.tenant.exclusion_group_id
    if group_id and group_id.lower() not in _ids(users.get("excludeGroups")):
        problems.append(
            ("conditions.users.excludeGroups", f"break-glass exclusion group {group_id} is not excluded")
        )
    return problems


def check_references_exist(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-02: no reference to a deleted or unknown user, group or role."""
    users = _users(policy)
    problems: list[tuple[str, str]] = []
    for key, missing, kind in (
        ("includeUsers", ctx.missing_users, "user"),
        ("excludeUsers", ctx.missing_users, "user"),
        ("includeGroups", ctx.missing_groups, "group"),
        ("excludeGroups", ctx.missing_groups, "group"),
        ("includeRoles", ctx.missing_roles, "directory role"),
        ("excludeRoles", ctx.missing_roles, "directory role"),
    ):
        for ref in sorted(_ids(users.get(key)) & missing):
            problems.append((f"conditions.users.{key}", f"{kind} {ref} does not exist in the tenant"))
    return problems


def check_enabled_was_report_only(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-05: nothing is enabled that never ran in report-only first (safety rule 2)."""
    if policy.get("state") != ENABLED:
        return []
    policy_id = str(policy.get("id") or "")
    if policy_id and ctx.was_report_only(policy_id):
        return []
    return [
        ("state", "enabled, but WaveGuard never saw it in report-only (enabledForReportingButNotEnforced)")
    ]


def _blocks_legacy(policy: PolicyBody) -> bool:
    conditions = policy.get("conditions") or {}
    client_apps = {str(v).casefold() for v in conditions.get("clientAppTypes") or []}
    grant = policy.get("grantControls") or {}
    return (
        policy.get("state") != "disabled"
        and {t.casefold() for t in LEGACY_CLIENT_APP_TYPES} <= client_apps
        and ALL.casefold() in {str(v).casefold() for v in _users(policy).get("includeUsers") or []}
        and ALL.casefold() in {str(v).casefold() for v in _apps(policy).get("includeApplications") or []}
        and "block" in (grant.get("builtInControls") or [])
    )


def _protects_registration(policy: PolicyBody) -> bool:
    grant = policy.get("grantControls") or {}
    return (
        policy.get("state") != "disabled"
        and REGISTER_SECURITY_INFO in (_apps(policy).get("includeUserActions") or [])
        and "mfa" in (grant.get("builtInControls") or [])
    )


def check_legacy_auth_blocked(
    policies: Sequence[PolicyBody], ctx: LintContext
) -> list[tuple[str | None, str | None, str]]:
    """WG-CA-03: one policy blocks exchangeActiveSync and other clients for all users and apps."""
    if any(_blocks_legacy(p) for p in policies):
        return []
    return [
        (
            None,
            "policies.blockLegacyAuth",
            "no policy blocks legacy authentication (exchangeActiveSync, other)",
        )
    ]


def check_registration_protected(
    policies: Sequence[PolicyBody], ctx: LintContext
) -> list[tuple[str | None, str | None, str]]:
    """WG-CA-04: registering security info requires MFA (a Temporary Access Pass satisfies it)."""
    if any(_protects_registration(p) for p in policies):
        return []
    return [(None, "policies.requireMfaRegistration", f"no policy requires MFA for {REGISTER_SECURITY_INFO}")]


def check_unique_names(
    policies: Sequence[PolicyBody], ctx: LintContext
) -> list[tuple[str | None, str | None, str]]:
    """WG-CA-06: WaveGuard finds its policies by name, so two must not share one."""
    seen: dict[str, int] = {}
    for policy in policies:
        key = str(policy.get("displayName") or "").casefold()
        seen[key] = seen.get(key, 0) + 1
    return [
        (
            str(p.get("displayName")),
            "displayName",
            "several live policies have this name; delete the extra one",
        )
        for p in policies
        if seen[str(p.get("displayName") or "").casefold()] > 1 and p.get("id")
    ]


def _grant(policy: PolicyBody) -> tuple[str, set[str]]:
    grant = policy.get("grantControls") or {}
    return str(grant.get("operator") or "OR"), {str(c) for c in grant.get("builtInControls") or []}


def _locations(policy: PolicyBody) -> Mapping[str, Any]:
    return ((policy.get("conditions") or {}).get("locations")) or {}


def _never_relaxed(policy: PolicyBody) -> str | None:
    """What makes a policy one whose MFA must never be relaxed, or None."""
    if _users(policy).get("includeRoles"):
        return "it covers administrators (directory roles)"
    named = [a for a in _apps(policy).get("includeApplications") or [] if str(a).lower() not in _APP_KEYWORDS]
    if named:
        return "it covers named (high-risk) applications"
    return None


def check_mfa_never_relaxed(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-07: administrators and high-risk apps always do MFA: no device may stand in for it
    (grant OR) and no location is exempt (the relaxations are for the wave policies only)."""
    why = _never_relaxed(policy)
    operator, controls = _grant(policy)
    if why is None or "block" in controls:
        return []
    problems: list[tuple[str, str]] = []
    strength = (policy.get("grantControls") or {}).get("authenticationStrength")
    if "mfa" not in controls and not strength:
        problems.append(("grantControls.builtInControls", f"does not require MFA, but {why}"))
    elif operator == "OR" and len(controls) > 1:
        others = ", ".join(sorted(controls - {"mfa"}))
        problems.append(
            (
                "grantControls.operator",
                f"OR lets {others} replace MFA, but {why}: require mfa alone or mfa AND compliantDevice "
                "(policies.requireMfa.satisfiedBy applies to the wave policies only)",
            )
        )
    locations = _locations(policy)
    include = {str(v).lower() for v in locations.get("includeLocations") or []}
    if locations.get("excludeLocations") or (include and include != {ALL.lower()}):
        problems.append(
            (
                "conditions.locations",
                f"exempts some locations, but {why}: no trusted network may skip MFA for them "
                "(policies.trustedLocations applies to the wave policies only)",
            )
        )
    return problems


def _risk_keys(policy: PolicyBody) -> list[tuple[str, str, str]]:
    conditions = policy.get("conditions") or {}
    return [
        (key, what, option)
        for key, what, option in (
            ("signInRiskLevels", "sign-in", "signInRisk"),
            ("userRiskLevels", "user", "userRisk"),
        )
        if conditions.get(key)
    ]


def _relaxes(policy: PolicyBody) -> list[str]:
    """What lets a member skip MFA in this policy: a control standing in for it, or exempt locations."""
    operator, controls = _grant(policy)
    what: list[str] = []
    if "mfa" in controls and operator == "OR" and len(controls) > 1:
        what.append(
            f"{', '.join(sorted(controls - {'mfa'}))} instead of MFA (policies.requireMfa.satisfiedBy)"
        )
    if _locations(policy).get("excludeLocations"):
        what.append("no MFA from trusted networks (policies.trustedLocations)")
    return what


def _covers(
    policy: PolicyBody, *, roles: frozenset[str] = frozenset(), apps: frozenset[str] = frozenset()
) -> bool:
    """An enabled, unrelaxed MFA policy for these roles on every app, or for these apps."""
    _, controls = _grant(policy)
    strength = (policy.get("grantControls") or {}).get("authenticationStrength")
    if policy.get("state") != ENABLED or ("mfa" not in controls and not strength) or _relaxes(policy):
        return False
    included_apps = {str(a).lower() for a in _apps(policy).get("includeApplications") or []}
    if roles or not apps:
        included_roles = {str(r).lower() for r in _users(policy).get("includeRoles") or []}
        return (
            bool(included_roles)
            and {r.lower() for r in roles} <= included_roles
            and ALL.lower() in included_apps
        )
    return ALL.lower() in included_apps or {a.lower() for a in apps} <= included_apps


def check_relaxations_guarded(
    policies: Sequence[PolicyBody], ctx: LintContext
) -> list[tuple[str | None, str | None, str]]:
    """WG-CA-07 (set): an enabled Require MFA policy may be relaxed (devices standing in for MFA,
    trusted networks) only while the administrators' policy, on every app, and the high-risk apps'
    policy (when configured) are enabled: else an administrator in a wave skips MFA with the wave."""
    mfa_name = (ctx.name_prefix + POLICY_TITLES["mfa"]).casefold()
    relaxed = [
        p
        for p in policies
        if str(p.get("displayName") or "").casefold() == mfa_name
        and p.get("state") == ENABLED
        and _relaxes(p)
    ]
    if not relaxed:
        return []
    admins = ctx.name_prefix + POLICY_TITLES["admins"]
    apps = ctx.name_prefix + POLICY_TITLES["high-risk-apps"]
    missing: list[str] = []
    if not ctx.admin_policy_wanted:
        missing.append(
            "policies.adminPolicy.enabled is false, so no policy holds administrators to MFA: set it to "
            f"true, apply, check {admins!r}'s report-only results and enable it in the Microsoft Entra "
            "admin center"
        )
    elif not any(_covers(p, roles=ctx.admin_roles) for p in policies):
        missing.append(
            f"{admins!r} is not enabled (WaveGuard creates it report-only and never enables it): check its "
            "report-only results and enable it in the Microsoft Entra admin center (Protection > "
            "Conditional Access), then apply again"
        )
    if ctx.high_risk_apps and not any(_covers(p, apps=ctx.high_risk_apps) for p in policies):
        missing.append(f"{apps!r} is not enabled: enable it in the Microsoft Entra admin center as well")
    if not missing:
        return []
    return [
        (
            str(p.get("displayName")),
            "grantControls" if _grant(p)[1] - {"mfa"} else "conditions.locations",
            f"lets the waves' users skip MFA ({'; '.join(_relaxes(p))}), and that would reach the "
            f"administrators in those waves: {'; '.join(missing)}. Until then remove "
            "policies.requireMfa.satisfiedBy and policies.trustedLocations",
        )
        for p in relaxed
    ]


def check_p2_licensed(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-08: risk conditions need Microsoft Entra ID P2; refused when the tenant has only P1, or
    when its licences could not be read."""
    if ctx.licence_p2 is None and ctx.licence_unreadable:
        return [
            (
                f"conditions.{key}",
                f"{what} risk needs Microsoft Entra ID P2 and WaveGuard could not read the tenant's "
                f"licences ({ctx.licence_unreadable}): grant WaveGuard's identity LicenseAssignment.Read.All "
                "(docs/permissions.md) so the preflight can confirm P2, then plan again",
            )
            for key, what, _ in _risk_keys(policy)
        ]
    if ctx.licence_p2 is not False:
        return []
    return [
        (
            f"conditions.{key}",
            f"{what} risk needs Microsoft Entra ID P2 and the tenant has none (preflight licence-p2): "
            f"license Entra ID P2 for the users the waves cover; or set policies.{option}.enabled: false "
            "(the next apply takes WaveGuard's risk policies out of enforcement, report-only) and "
            "delete them in the Microsoft Entra admin center",
        )
        for key, what, option in _risk_keys(policy)
    ]


def check_locations_exist(policy: PolicyBody, ctx: LintContext) -> list[tuple[str, str]]:
    """WG-CA-09: every named location a policy references exists (or is created by this apply)."""
    if ctx.location_ids is None:
        return []
    locations = _locations(policy)
    problems: list[tuple[str, str]] = []
    for key in ("includeLocations", "excludeLocations"):
        for ref in locations.get(key) or []:
            value = str(ref).lower()
            if value in _SPECIAL_LOCATIONS or is_pending(ref) or value in ctx.location_ids:
                continue
            problems.append(
                (f"conditions.locations.{key}", f"named location {ref} does not exist in the tenant")
            )
    return problems


def check_named_locations(
    policies: Sequence[PolicyBody], ctx: LintContext
) -> list[tuple[str | None, str | None, str]]:
    """WG-CA-10: WaveGuard's named locations can be written (right type, one per name)."""
    return [(name, field_, message) for name, field_, message in ctx.location_problems]


# id -> (severity, check); per-policy checks run on each policy, set checks on the whole set.
CHECKS: Final[Mapping[str, tuple[Severity, PolicyCheck | None, SetCheck | None]]] = {
    "WG-CA-01": ("error", check_break_glass_excluded, None),
    "WG-CA-02": ("error", check_references_exist, None),
    "WG-CA-03": ("error", None, check_legacy_auth_blocked),
    "WG-CA-04": ("error", None, check_registration_protected),
    "WG-CA-05": ("error", check_enabled_was_report_only, None),
    "WG-CA-06": ("error", None, check_unique_names),
    "WG-CA-07": ("error", check_mfa_never_relaxed, check_relaxations_guarded),
    "WG-CA-08": ("error", check_p2_licensed, None),
    "WG-CA-09": ("error", check_locations_exist, None),
    "WG-CA-10": ("error", None, check_named_locations),
}


# Checks about the apply itself, not about a set of policies: run once, on the post-apply set.
_AFTER_APPLY_ONLY: Final = frozenset({"WG-CA-10"})


# Checks about what the tenant lets WaveGuard write (licences, named locations) or what guards a
# relaxation: they stop an apply that adds enforcement, never one that only takes it away.
DOWNGRADED_ON_ROLLBACK: Final = frozenset({"WG-CA-07", "WG-CA-08", "WG-CA-10"})


def _severity(check: str, ctx: LintContext) -> Severity:
    # Turned off in the plan on purpose: still reported, but the operator's decision stands.
    if (check == "WG-CA-03" and not ctx.legacy_block_wanted) or (
        check == "WG-CA-04" and not ctx.registration_wanted
    ):
        return "warning"
    if ctx.reduces_only and check in DOWNGRADED_ON_ROLLBACK:
        return "warning"
    return CHECKS[check][0]


def _run(policies: Sequence[PolicyBody], ctx: LintContext, scope: Scope) -> list[Finding]:
    findings: list[Finding] = []
    for check, (_, per_policy, per_set) in CHECKS.items():
        if scope == "live" and check in _AFTER_APPLY_ONLY:
            continue
        severity = _severity(check, ctx)
        if per_policy is not None:
            for policy in policies:
                name = str(policy.get("displayName") or policy.get("id"))
                findings += [Finding(check, severity, name, f, m, scope) for f, m in per_policy(policy, ctx)]
        if per_set is not None:
            findings += [Finding(check, severity, n, f, m, scope) for n, f, m in per_set(policies, ctx)]
    return findings


def lint_policies(
    after_apply: Sequence[PolicyBody], live: Sequence[PolicyBody], ctx: LintContext
) -> LintReport:
    """Run every check on the post-apply set and on the live WaveGuard policies."""
    plan_problems = [
        Finding("WG-CA-02", "error", None, problem.split(":", 1)[0], problem.split(":", 1)[-1].strip())
        for problem in ctx.tenant.problems
    ]
    findings = plan_problems + _run(after_apply, ctx, "after-apply")
    if live:
        findings += _run(live, ctx, "live")
    return LintReport(tuple(findings), ctx.reduces_only)
