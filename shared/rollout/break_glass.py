"""Verify the break-glass set-up in the tenant: every account exists and sits in the exclusion group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.config import BreakGlass
from shared.graph.directory import find_group, find_user, iter_group_member_ids

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["BreakGlassAccountStatus", "BreakGlassReport", "verify_break_glass"]


@dataclass(frozen=True, slots=True)
class BreakGlassAccountStatus:
    """One configured account as found in the tenant."""

    configured_as: str
    object_id: str | None
    in_exclusion_group: bool


@dataclass(frozen=True, slots=True)
class BreakGlassReport:
    """The tenant's break-glass state and every problem with it, worded for an operator."""

    exclusion_group_id: str | None
    accounts: tuple[BreakGlassAccountStatus, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_break_glass(client: GraphServiceClient, break_glass: BreakGlass) -> BreakGlassReport:
    """Resolve each account and the exclusion group, and check every account is a member.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused a read (e.g. a missing permission).
    """
    problems: list[str] = []
    ref = break_glass.exclusion_group
    group = await find_group(client, group_id=ref.id, display_name=ref.display_name)
    members: set[str] = set()
    if group is None or not group.id:
        problems.append(f"exclusion group {ref.id or ref.display_name!r} not found in the tenant")
    else:
        members = {m async for m in iter_group_member_ids(client, group.id)}
    statuses: list[BreakGlassAccountStatus] = []
    for account in break_glass.accounts:
        name = account.user_principal_name or str(account.id)
        lookup = str(account.id) if account.id else name
        user = await find_user(client, lookup, select=("id", "userPrincipalName"))
        if user is None or not user.id:
            problems.append(f"break-glass account {name} not found in the tenant")
            statuses.append(BreakGlassAccountStatus(name, None, False))
            continue
        in_group = user.id in members
        if group is not None and not in_group:
            problems.append(f"break-glass account {name} is not a member of the exclusion group")
        statuses.append(BreakGlassAccountStatus(name, user.id, in_group))
    return BreakGlassReport(group.id if group else None, tuple(statuses), tuple(problems))
