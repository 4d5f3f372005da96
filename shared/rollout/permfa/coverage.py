"""Who WaveGuard's live "Require MFA" policy actually covers: its groups, minus whom it leaves out,
and only while nothing else in the policy narrows it.

A member of an enforced wave is covered by Conditional Access only when exactly one policy of that
name is ``enabled``, it includes the wave's group and does not exclude the member — by id
(``excludeUsers``: the break-glass accounts) or through an excluded group (the break-glass
exclusion group, or any group someone added in the portal; nested groups followed) — and nothing
else in it lets a sign-in through without MFA. Anything WaveGuard cannot account for user by user
is a **problem**, and while there is one nobody counts as covered (so nobody is moved off
per-user MFA): excluded roles or guests, applications other than all of them, client app types,
platforms, devices, risk levels, excluded locations that are not the plan's trusted networks, a
grant that lets anything but the plan's device controls stand in for MFA, a second enabled policy
of the same name. What the plan itself chose (``requireMfa.satisfiedBy``, ``trustedLocations``)
is an **exemption**: said out loud wherever migration is planned, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.errors import PermanentError
from shared.rollout.membership.reads import iter_member_rows
from shared.rollout.policies.render import POLICY_TITLES

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config import RolloutPlan

__all__ = ["LiveCoverage", "excluded_group_members", "policy_problems", "read_coverage"]

_GROUP_TYPE: Final = "#microsoft.graph.group"
# Nested excluded groups followed at most this deep (a cycle stops at the visited set anyway).
_MAX_DEPTH: Final = 8
_TRUSTED_TITLE: Final = "Trusted network: "
_RISK_FIELDS: Final = (
    "signInRiskLevels",
    "userRiskLevels",
    "servicePrincipalRiskLevels",
    "insiderRiskLevels",
)


@dataclass(frozen=True, slots=True)
class LiveCoverage:
    """Groups the enabled "Require MFA" policy includes and users it leaves out (ids, lower case);
    ``problems``: why it covers nobody for sure; ``exemptions``: what the plan lets through."""

    include_groups: frozenset[str]
    excluded_users: frozenset[str]
    problems: tuple[str, ...] = ()
    exemptions: tuple[str, ...] = ()

    def covers(self, group_id: str | None, user_id: str) -> bool:
        """True when the user, as a member of ``group_id``, is required to use MFA by the policy."""
        return (
            not self.problems
            and (group_id or "").lower() in self.include_groups
            and user_id.lower() not in self.excluded_users
        )


async def read_coverage(client: GraphServiceClient, plan: RolloutPlan) -> LiveCoverage:
    """Read the live policies (paced, paged), the plan's trusted named locations and the members
    of every group the policy excludes.

    Raises:
        RetryableError / PermanentError: Graph failed.
    """
    from shared.graph.conditional_access import ConditionalAccessApi

    api = ConditionalAccessApi(client)
    name = plan.policies.name_prefix + POLICY_TITLES["mfa"]
    enabled = [
        p for p in await api.list_policies() if p.get("displayName") == name and p.get("state") == "enabled"
    ]
    if not enabled:
        return LiveCoverage(frozenset(), frozenset())
    if len(enabled) > 1:
        problem = (
            f"{len(enabled)} enabled policies are named {name!r}: WaveGuard cannot tell which one covers "
            "a wave; delete the extra one"
        )
        return LiveCoverage(frozenset(), frozenset(), (problem,))
    policy = enabled[0]
    trusted = await _trusted_location_ids(api, plan) if _excluded_locations(policy) else frozenset()
    problems, exemptions = policy_problems(policy, plan, trusted)
    users = (policy.get("conditions") or {}).get("users") or {}
    include = _ids(users.get("includeGroups"))
    excluded = _ids(users.get("excludeUsers")) | await excluded_group_members(
        client, _ids(users.get("excludeGroups"))
    )
    return LiveCoverage(frozenset(include), frozenset(excluded), tuple(problems), tuple(exemptions))


def policy_problems(
    policy: dict[str, Any], plan: RolloutPlan, trusted_location_ids: frozenset[str]
) -> tuple[list[str], list[str]]:
    """What in the live policy narrows MFA beyond its users (problems), and what the plan chose to
    let through (exemptions)."""
    conditions = policy.get("conditions") or {}
    users = conditions.get("users") or {}
    problems: list[str] = []
    exemptions: list[str] = []
    if users.get("excludeRoles"):
        problems.append("it excludes directory roles (members holding them are not asked for MFA)")
    if users.get("excludeGuestsOrExternalUsers") or "guestsorexternalusers" in _ids(
        users.get("excludeUsers")
    ):
        problems.append("it excludes guests or external users")
    apps = conditions.get("applications") or {}
    if _ids(apps.get("includeApplications")) != {"all"} or apps.get("excludeApplications"):
        problems.append("it does not cover every application")
    if apps.get("includeUserActions") or apps.get("includeAuthenticationContextClassReferences"):
        problems.append("it targets user actions or authentication contexts")
    if apps.get("applicationFilter"):
        problems.append("it filters applications")
    if _ids(conditions.get("clientAppTypes")) - {"all"}:
        problems.append("it covers only some client app types")
    for field in ("platforms", "devices", "clientApplications"):
        if conditions.get(field):
            problems.append(f"it has a {field} condition")
    if any(conditions.get(field) for field in _RISK_FIELDS):
        problems.append("it applies only at some risk levels")
    problems += _location_problems(conditions.get("locations"), trusted_location_ids, exemptions)
    problems += _grant_problems(policy.get("grantControls") or {}, plan, exemptions)
    return problems, exemptions


def _location_problems(
    locations: Any, trusted_location_ids: frozenset[str], exemptions: list[str]
) -> list[str]:
    if not locations:
        return []
    include = _ids(locations.get("includeLocations"))
    exclude = _ids(locations.get("excludeLocations"))
    if include and include != {"all"}:
        return ["it covers only some locations"]
    if not exclude:
        return []
    foreign = exclude - trusted_location_ids
    if foreign:
        return ["it excludes locations that are not the plan's trusted networks"]
    exemptions.append(f"sign-ins from the plan's {len(exclude)} trusted network(s) are not asked for MFA")
    return []


def _grant_problems(grant: dict[str, Any], plan: RolloutPlan, exemptions: list[str]) -> list[str]:
    controls = _ids(grant.get("builtInControls"))
    strength = bool(grant.get("authenticationStrength"))
    if "mfa" not in controls and not strength:
        return ["its grant does not require MFA"]
    if (
        str(grant.get("operator") or "OR").upper() == "AND"
        or len(controls | ({"mfa"} if strength else set())) <= 1
    ):
        return [] if not grant.get("customAuthenticationFactors") else ["its grant has custom factors"]
    alternatives = controls - {"mfa"}
    allowed = {str(c).lower() for c in plan.policies.require_mfa.satisfied_by}
    if grant.get("customAuthenticationFactors") or grant.get("termsOfUse") or not alternatives <= allowed:
        return ["its grant lets something other than MFA or the plan's device controls through"]
    names = " or ".join(
        sorted(c for c in plan.policies.require_mfa.satisfied_by if c.lower() in alternatives)
    )
    exemptions.append(f"a {names} stands in for MFA (requireMfa.satisfiedBy)")
    return []


def _excluded_locations(policy: dict[str, Any]) -> bool:
    locations = (policy.get("conditions") or {}).get("locations") or {}
    return bool(locations.get("excludeLocations"))


async def _trusted_location_ids(api: Any, plan: RolloutPlan) -> frozenset[str]:
    """Ids of the plan's trusted networks as WaveGuard named them (prefix + "Trusted network: ")."""
    prefix = plan.policies.name_prefix + _TRUSTED_TITLE
    wanted = {prefix + t.name for t in plan.policies.trusted_locations}
    return frozenset(
        str(loc["id"]).lower()
        for loc in await api.list_named_locations()
        if loc.get("displayName") in wanted and loc.get("id")
    )


async def excluded_group_members(client: GraphServiceClient, groups: set[str]) -> set[str]:
    """Every user in ``groups``, following nested groups."""
    users: set[str] = set()
    seen: set[str] = set()
    pending = sorted(groups)
    for _ in range(_MAX_DEPTH):
        if not pending:
            break
        nested: list[str] = []
        for group_id in pending:
            seen.add(group_id)
            async for row in iter_member_rows(client, group_id, ("id",)):
                member = str(row["id"]).lower()
                if row.get("@odata.type") == _GROUP_TYPE:
                    nested.append(member)
                else:
                    users.add(member)
        pending = sorted(set(nested) - seen)
    if pending:
        raise PermanentError(
            f"the groups excluded from the Require MFA policy nest deeper than {_MAX_DEPTH} levels; "
            "flatten them so WaveGuard can tell whom Conditional Access leaves out",
            groups=pending[:5],
        )
    return users


def _ids(values: Any) -> set[str]:
    return {str(v).lower() for v in values or [] if isinstance(v, str)}
