"""Desired members of a wave: every user, assigned with the shared assignment function.

Users and group members are read as raw JSON (``reads``), not through msgraph models: at
50,000 users model parsing alone would take minutes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from shared.config import RolloutPlan, is_guid
from shared.errors import NotFoundError
from shared.graph.directory import find_group
from shared.rollout.assignment import UserFacts, assign_wave
from shared.rollout.group_refs import exclusion_group_id, refuse_exclusion_group
from shared.rollout.membership.reads import iter_member_ids, iter_user_rows

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "USER_SELECT",
    "DesiredMembers",
    "desired_members",
    "resolve_selector_groups",
    "selector_groups",
]

# What the selectors read (Graph v1.0 returns department/country only when selected).
USER_SELECT: Final = ("id", "userPrincipalName", "department", "country")


@dataclass(frozen=True, slots=True)
class DesiredMembers:
    """Who belongs in ``wave``; every directory user's assigned wave; break-glass users skipped."""

    wave: str
    members: frozenset[str]
    assigned: dict[str, str | None]
    break_glass_skipped: tuple[str, ...]
    break_glass_matched: tuple[str, ...]


def selector_groups(plan: RolloutPlan) -> list[str]:
    """Every group selector of the plan (ids or display names), in plan order, once."""
    seen: dict[str, None] = {}
    for wave in plan.waves:
        for group in wave.selectors.groups:
            seen.setdefault(group, None)
    return list(seen)


def _selector_field(plan: RolloutPlan, selector: str) -> str:
    for index, wave in enumerate(plan.waves):
        if selector in wave.selectors.groups:
            return f"waves[{index}].selectors.groups[{wave.selectors.groups.index(selector)}]"
    return "selectors.groups"


async def resolve_selector_groups(
    client: GraphServiceClient, plan: RolloutPlan, exclusion_id: str | None
) -> list[tuple[str, str | None]]:
    """Every group selector of the plan as ``(id, displayName)``, checked: it exists, its name is
    not ambiguous, and it is not the break-glass exclusion group.

    Raises:
        NotFoundError: a selector group does not exist.
        PermanentError: several groups share a selector's displayName.
        SafetyViolationError: a selector is the exclusion group.
        RetryableError: Graph failed.
    """
    selectors = selector_groups(plan)
    exclusion = exclusion_id or (await exclusion_group_id(client, plan) if selectors else "")
    resolved: list[tuple[str, str | None]] = []
    for selector in selectors:
        by_id = is_guid(selector)
        group = await find_group(
            client, group_id=selector if by_id else None, display_name=None if by_id else selector
        )
        if group is None or not group.id:
            raise NotFoundError(f"selector group {selector!r} does not exist", field="selectors.groups")
        refuse_exclusion_group(group.id, exclusion, field=_selector_field(plan, selector))
        resolved.append((group.id, group.display_name))
    return resolved


async def _memberships(
    client: GraphServiceClient, plan: RolloutPlan, exclusion_id: str | None
) -> dict[str, list[tuple[str, str | None]]]:
    """user id -> the selector groups (id, name) the user is a direct member of."""
    of_user: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for group_id, name in await resolve_selector_groups(client, plan, exclusion_id):
        async for member_id in iter_member_ids(client, group_id):
            of_user[member_id].append((group_id, name))
    return of_user


async def desired_members(
    client: GraphServiceClient, plan: RolloutPlan, wave_name: str, *, exclusion_id: str | None = None
) -> DesiredMembers:
    """Read the directory and assign every user; the wave's members are those assigned to it.

    Break-glass users are never members; those a selector of this wave would match are reported.

    Raises:
        NotFoundError: the wave is not in the plan, or a selector group does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
    """
    try:
        wave = plan.wave(wave_name)
    except KeyError:
        raise NotFoundError(f"wave {wave_name!r} is not in the plan", field="wave") from None
    groups = await _memberships(client, plan, exclusion_id)
    assigned: dict[str, str | None] = {}
    members: set[str] = set()
    skipped: list[str] = []
    matched: list[str] = []
    async for user in iter_user_rows(client, USER_SELECT):
        user_id = str(user.get("id") or "")
        if not user_id:
            continue
        facts = UserFacts.of(
            user_id=user_id,
            user_principal_name=user.get("userPrincipalName"),
            department=user.get("department"),
            country=user.get("country"),
            groups=groups.get(user_id, ()),
        )
        assignment = assign_wave(plan, facts)
        assigned[user_id] = assignment.wave
        if assignment.wave == wave.name:
            members.add(user_id)
        elif assignment.reason == "break-glass":
            skipped.append(user_id)
            if wave.catch_all or _would_match(plan, wave_name, facts):
                matched.append(user_id)
    return DesiredMembers(wave.name, frozenset(members), assigned, tuple(skipped), tuple(matched))


def _would_match(plan: RolloutPlan, wave_name: str, facts: UserFacts) -> bool:
    """True when this wave's selectors match the facts (break-glass check left out)."""
    unprotected = plan.model_copy(update={"waves": [w for w in plan.waves if w.name == wave_name]})
    bare = UserFacts(None, None, facts.department, facts.country, facts.group_ids, facts.group_names)
    upn_match = any(
        facts.user_principal_name and u.casefold() == facts.user_principal_name.casefold()
        for w in unprotected.waves
        for u in w.selectors.users
    )
    return upn_match or assign_wave(unprotected, bare).reason == "selector"
