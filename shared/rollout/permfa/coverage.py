"""Who WaveGuard's live "Require MFA" policy actually covers: its groups, minus whom it excludes.

A member of an enforced wave is covered by Conditional Access only when the live policy is
``enabled``, includes the wave's group and does not exclude the member, either by id
(``excludeUsers``: the break-glass accounts) or through an excluded group (the break-glass
exclusion group, or any group someone added in the portal). Excluded groups are read member by
member, nested groups included, so nobody excluded from CA is ever taken off per-user MFA.
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

__all__ = ["LiveCoverage", "read_coverage"]

_GROUP_TYPE: Final = "#microsoft.graph.group"
# Nested excluded groups followed at most this deep (a cycle stops at the visited set anyway).
_MAX_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class LiveCoverage:
    """Groups the enabled "Require MFA" policy includes and users it leaves out (ids, lower case)."""

    include_groups: frozenset[str]
    excluded_users: frozenset[str]

    def covers(self, group_id: str | None, user_id: str) -> bool:
        """True when the user, as a member of ``group_id``, is required to use MFA by the policy."""
        return (group_id or "").lower() in self.include_groups and user_id.lower() not in self.excluded_users


async def read_coverage(client: GraphServiceClient, plan: RolloutPlan) -> LiveCoverage:
    """Read the live policy (paced, paged) and the members of every group it excludes.

    Raises:
        RetryableError / PermanentError: Graph failed.
    """
    from shared.graph.conditional_access import ConditionalAccessApi

    name = plan.policies.name_prefix + POLICY_TITLES["mfa"]
    include: set[str] = set()
    exclude_users: set[str] = set()
    exclude_groups: set[str] = set()
    for policy in await ConditionalAccessApi(client).list_policies():
        if policy.get("displayName") != name or policy.get("state") != "enabled":
            continue
        users = (policy.get("conditions") or {}).get("users") or {}
        include |= _ids(users.get("includeGroups"))
        exclude_users |= _ids(users.get("excludeUsers"))
        exclude_groups |= _ids(users.get("excludeGroups"))
    if not include:
        return LiveCoverage(frozenset(), frozenset(exclude_users))
    exclude_users |= await _members_of(client, exclude_groups)
    return LiveCoverage(frozenset(include), frozenset(exclude_users))


async def _members_of(client: GraphServiceClient, groups: set[str]) -> set[str]:
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
