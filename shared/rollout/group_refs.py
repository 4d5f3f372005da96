"""Group references compared by resolved object id, never by the words of the plan.

A plan may name the break-glass exclusion group by id and a wave's group by displayName (or the
other way round, in another case): only the ids Graph resolves them to tell that they are the same
group. Every run that writes resolves the exclusion group first and refuses a wave group, selector
group or policy target that is the exclusion group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shared.config import RolloutPlan
from shared.errors import ConfigError, SafetyViolationError
from shared.graph.directory import find_group

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["exclusion_group_id", "refuse_exclusion_group", "wave_field"]

RULE: Final = "break-glass"


async def exclusion_group_id(client: GraphServiceClient, plan: RolloutPlan) -> str:
    """The object id (lower case) of ``breakGlass.exclusionGroup``.

    Raises:
        SafetyViolationError: the group does not exist (nothing may be written without it).
        ConfigError: the plan gives an id and a displayName that name different groups.
        RetryableError / PermanentError: Graph failed, or several groups share the displayName.
    """
    ref = plan.break_glass.exclusion_group
    group = await find_group(client, group_id=ref.id, display_name=None if ref.id else ref.display_name)
    if group is None or not group.id:
        raise SafetyViolationError(
            f"breakGlass.exclusionGroup: group {ref} not found in the tenant; nothing is written without it",
            rule=RULE,
            field="breakGlass.exclusionGroup",
        )
    if (
        ref.id
        and ref.display_name
        and str(group.display_name or "").casefold() != ref.display_name.casefold()
    ):
        raise ConfigError(
            f"breakGlass.exclusionGroup: id {ref.id} is the group {group.display_name!r}, not "
            f"{ref.display_name!r}; fix the id or the displayName",
            field="breakGlass.exclusionGroup",
        )
    return str(group.id).lower()


def refuse_exclusion_group(group_id: str | None, exclusion_id: str, *, field: str) -> None:
    """Refuse a plan whose ``field`` resolves to the exclusion group.

    Raises:
        SafetyViolationError: it does.
    """
    if group_id is not None and group_id.lower() == exclusion_id.lower():
        raise SafetyViolationError(
            f"{field} resolves to the break-glass exclusion group {exclusion_id}; a wave, selector or "
            "policy target can never be that group. Fix the plan.",
            rule=RULE,
            field=field,
        )


def wave_field(plan: RolloutPlan, wave_name: str, leaf: str = "group") -> str:
    """``waves[i].<leaf>`` for the wave called ``wave_name``, as an operator finds it in the plan."""
    index = next((i for i, wave in enumerate(plan.waves) if wave.name == wave_name), None)
    return f"waves[{index}].{leaf}" if index is not None else f"waves.{wave_name}.{leaf}"
