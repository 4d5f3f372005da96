"""The groups WaveGuard watches, and why: what a change in each of them means.

- ``exclusion``: the break-glass exclusion group (a break-glass account must never leave it);
- ``wave:<name>``: a wave's target group (a break-glass account must never be in it; a member of an
  enforced wave removed by someone else is alerted on);
- ``selector:<name>``: a group a wave's selectors name (a change moves people between waves);
- ``policy``: a group a WaveGuard-managed Conditional Access policy includes (a break-glass account
  must never be in it). Excluded groups are watched too (a change there changes who is protected),
  but a break-glass account in one is expected: every managed policy excludes the exclusion group.

Group ids are lower case. A wave whose group does not exist yet (a planned wave) is not watched; a
selector or wave group that does not exist, or whose display name several groups share, is reported
in ``missing``, not watched (one ambiguous name never stops the watch of the others).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from shared.config import RolloutPlan, is_guid
from shared.errors import PermanentError
from shared.graph.directory import odata_literal
from shared.rollout.wave_groups import recorded_group_id
from shared.state import AsyncKeyValuePort

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "EXCLUSION",
    "POLICY",
    "POLICY_EXCLUDED",
    "AmbiguousGroupError",
    "WatchedGroup",
    "WatchedSet",
    "watched_groups",
]

EXCLUSION: Final = "exclusion"
POLICY: Final = "policy"
POLICY_EXCLUDED: Final = "policy-excluded"
_CA_POLICIES: Final = "/identity/conditionalAccess/policies?$select=id,displayName,conditions"
_MAX_POLICY_PAGES: Final = 20


class AmbiguousGroupError(PermanentError):
    """Several groups share a display name the plan uses."""


@dataclass(frozen=True, slots=True)
class WatchedGroup:
    """One watched group and its roles (``exclusion``, ``wave:<name>``, ``selector:<name>``, ``policy``)."""

    group_id: str
    roles: tuple[str, ...]
    display_name: str | None = None

    @property
    def is_exclusion(self) -> bool:
        return EXCLUSION in self.roles

    @property
    def targeted(self) -> bool:
        """A wave group or a group a policy includes: no break-glass account may be in it.

        Never the exclusion group, whatever else it is: break-glass accounts belong there.
        """
        if self.is_exclusion:
            return False
        return any(role.startswith("wave:") or role == POLICY for role in self.roles)

    @property
    def waves(self) -> tuple[str, ...]:
        """The waves this is the target group of."""
        return tuple(role.split(":", 1)[1] for role in self.roles if role.startswith("wave:"))

    @property
    def selector_of(self) -> tuple[str, ...]:
        """The waves whose selectors name this group."""
        return tuple(role.split(":", 1)[1] for role in self.roles if role.startswith("selector:"))


@dataclass(frozen=True, slots=True)
class WatchedSet:
    """The watched groups, and the plan's groups that could not be found (not watched)."""

    groups: tuple[WatchedGroup, ...]
    missing: tuple[str, ...]

    def get(self, group_id: str) -> WatchedGroup | None:
        return next((g for g in self.groups if g.group_id == group_id.lower()), None)


async def watched_groups(graph: GraphServiceClient, plan: RolloutPlan, kv: AsyncKeyValuePort) -> WatchedSet:
    """Resolve every group the plan and the managed policies name.

    Raises:
        SafetyViolationError: the break-glass exclusion group does not exist.
        RetryableError / PermanentError: Graph or storage failed.
    """
    from shared.rollout.group_refs import exclusion_group_id

    roles: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str | None] = {}
    missing: list[str] = []
    exclusion = await exclusion_group_id(graph, plan)
    roles[exclusion].append(EXCLUSION)
    names[exclusion] = plan.break_glass.exclusion_group.display_name
    for index, wave in enumerate(plan.waves):
        group_id = await recorded_group_id(kv, wave.name)
        try:
            found = await _find(
                graph, group_id or wave.group.id, None if group_id else wave.group.display_name
            )
        except AmbiguousGroupError as exc:
            missing.append(f"waves[{index}].group ({exc})")
            continue
        if found is None:
            continue  # not created yet: the wave has not started
        roles[found[0]].append(f"wave:{wave.name}")
        names[found[0]] = found[1]
        for position, selector in enumerate(wave.selectors.groups):
            by_id = is_guid(selector)
            try:
                hit = await _find(graph, selector if by_id else None, None if by_id else selector)
            except AmbiguousGroupError as exc:
                missing.append(f"waves[{index}].selectors.groups[{position}] ({exc})")
                continue
            if hit is None:
                missing.append(f"waves[{index}].selectors.groups[{position}] ({selector})")
                continue
            roles[hit[0]].append(f"selector:{wave.name}")
            names[hit[0]] = hit[1]
    included, excluded = await _policy_groups(graph, plan.policies.name_prefix)
    for group_id in included:
        if POLICY not in roles[group_id]:
            roles[group_id].append(POLICY)
    for group_id in excluded:
        if group_id != exclusion and POLICY_EXCLUDED not in roles[group_id] and POLICY not in roles[group_id]:
            roles[group_id].append(POLICY_EXCLUDED)
    groups = tuple(
        WatchedGroup(group_id, tuple(dict.fromkeys(found)), names.get(group_id))
        for group_id, found in sorted(roles.items())
    )
    return WatchedSet(groups, tuple(missing))


async def _find(
    graph: GraphServiceClient, group_id: str | None, display_name: str | None
) -> tuple[str, str | None] | None:
    from shared.graph.client import get_json

    if group_id:
        found = await get_json(graph, f"/groups/{quote(group_id)}?$select=id,displayName")
        return (str(found["id"]).lower(), found.get("displayName")) if found and found.get("id") else None
    if not display_name:
        return None
    page = await get_json(
        graph,
        f"/groups?$filter=displayName eq {quote(odata_literal(display_name))}&$select=id,displayName&$top=2",
    )
    value: list[Any] = list((page or {}).get("value") or [])
    if len(value) > 1:
        raise AmbiguousGroupError(
            f"several groups are named {display_name!r}; give the group's id in the plan"
        )
    return (str(value[0]["id"]).lower(), value[0].get("displayName")) if value else None


async def _policy_groups(graph: GraphServiceClient, prefix: str) -> tuple[list[str], list[str]]:
    """The groups WaveGuard-managed (name-prefixed) CA policies include, and those they exclude."""
    from shared.graph.client import get_json

    base = str(graph.request_adapter.base_url).rstrip("/")
    path: str | None = _CA_POLICIES
    found: dict[str, dict[str, None]] = {"includeGroups": {}, "excludeGroups": {}}
    for _ in range(_MAX_POLICY_PAGES):
        if path is None:
            break
        page = await get_json(graph, path) or {}
        for policy in page.get("value") or []:
            if not str(policy.get("displayName") or "").startswith(prefix):
                continue
            users = ((policy.get("conditions") or {}).get("users")) or {}
            for key in ("includeGroups", "excludeGroups"):
                for group_id in users.get(key) or []:
                    if isinstance(group_id, str) and is_guid(group_id):
                        found[key].setdefault(group_id.lower(), None)
        next_link = page.get("@odata.nextLink")
        path = next_link[len(base) :] if isinstance(next_link, str) and next_link.startswith(base) else None
    return list(found["includeGroups"]), list(found["excludeGroups"])
