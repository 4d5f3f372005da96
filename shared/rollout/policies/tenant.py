"""The plan's references resolved against the tenant, and the reference checks behind the lint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from shared.config import DEFAULT_ADMIN_ROLES, RolloutPlan
from shared.errors import NotFoundError
from shared.graph.directory import find_group, find_user
from shared.graph.errors import to_waveguard_error
from shared.rollout.policies.render import TenantIds

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["BUILT_IN_ROLE_TEMPLATES", "GraphReferenceLookup", "resolve_tenant"]

# Built-in directory role template ids are the same in every tenant; only custom roles need a lookup.
BUILT_IN_ROLE_TEMPLATES: Final = frozenset(
    {
        *DEFAULT_ADMIN_ROLES,
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",  # Global Reader
        "5d6b6bb7-de71-4623-b4af-96380a352509",  # Security Reader
        "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f",  # Security Operator
        "17315797-102d-40b4-93e0-432062caca18",  # Compliance Administrator
        "69091246-20e8-4a56-aa4d-066075b2a7a8",  # Teams Administrator
        "11648597-926c-4cf3-9c36-bcebb0ba8dcc",  # Power Platform Administrator
        "966707d0-3269-4727-9be2-8c3a10f19b9d",  # Password Administrator
        "7698a772-787b-4ac8-901f-60d6b08affd2",  # Cloud Device Administrator
    }
)


async def resolve_tenant(client: GraphServiceClient, plan: RolloutPlan) -> TenantIds:
    """Object ids of the break-glass accounts, the exclusion group and each wave's group.

    A break-glass reference that does not resolve is recorded in ``problems`` (the lint fails on
    it) instead of raising, so ``plan`` can show every problem at once; a wave group that does not
    exist is None (harmless while the wave is planned).

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused a read (e.g. a missing permission).
    """
    problems: list[str] = []
    user_ids: list[str] = []
    for index, account in enumerate(plan.break_glass.accounts):
        lookup = account.id or str(account.user_principal_name)
        user = await find_user(client, lookup, select=("id",))
        if user is None or not user.id:
            problems.append(f"breakGlass.accounts[{index}]: {lookup} not found in the tenant")
        else:
            user_ids.append(user.id.lower())
    ref = plan.break_glass.exclusion_group
    group = await find_group(client, group_id=ref.id, display_name=ref.display_name)
    if group is None or not group.id:
        problems.append(f"breakGlass.exclusionGroup: group {ref} not found in the tenant")
    wave_groups: dict[str, str | None] = {}
    for wave in plan.waves:
        # A missing group only matters once the wave is under way: build_policy_plan reports it then.
        found = await find_group(client, group_id=wave.group.id, display_name=wave.group.display_name)
        wave_groups[wave.name] = found.id.lower() if found is not None and found.id else None
    exclusion_id = group.id.lower() if group is not None and group.id else None
    for index, wave in enumerate(plan.waves):
        if exclusion_id is not None and wave_groups[wave.name] == exclusion_id:
            problems.append(
                f"waves[{index}].group resolves to the break-glass exclusion group {exclusion_id}; "
                "a policy target can never be that group"
            )
    return TenantIds(tuple(user_ids), exclusion_id, wave_groups, tuple(problems))


class GraphReferenceLookup:
    """Finds ids the policies reference that no longer (or never did) exist, through Graph."""

    def __init__(self, client: GraphServiceClient) -> None:
        self._client = client

    async def missing_users(self, ids: Iterable[str]) -> set[str]:
        """Ids of users that do not exist.

        Raises:
            RetryableError / PermanentError: as for ``find_user``.
        """
        return {i for i in set(ids) if await find_user(self._client, i, select=("id",)) is None}

    async def missing_groups(self, ids: Iterable[str]) -> set[str]:
        """Ids of groups that do not exist.

        Raises:
            RetryableError / PermanentError: as for ``find_group``.
        """
        return {i for i in set(ids) if await find_group(self._client, group_id=i) is None}

    async def missing_roles(self, ids: Iterable[str]) -> set[str]:
        """Role template ids that are neither built-in nor a custom role definition of the tenant.

        Raises:
            RetryableError / PermanentError: Graph failed or refused the read.
        """
        return {i for i in set(ids) if i not in BUILT_IN_ROLE_TEMPLATES and not await self._custom_role(i)}

    async def _custom_role(self, role_id: str) -> bool:
        definitions = self._client.role_management.directory.role_definitions
        try:
            return await definitions.by_unified_role_definition_id(role_id).get() is not None
        except Exception as exc:
            error = to_waveguard_error(exc, operation="get role definition")
            if isinstance(error, NotFoundError):
                return False
            raise error from exc
