"""A wave group renamed in the plan is never silently ignored.

WaveGuard finds a wave's group by the id it recorded when it created it (or the plan's id), so a
new displayName in the plan would otherwise change nothing. ``wave_group_drift`` lists every wave
whose group is named differently in the tenant; ``policies plan``, ``waves status`` and ``doctor``
show it, and ``policies apply`` renames the group (audited). Renaming a group WaveGuard created
works with ``Group.Create`` (it owns the group); any other group needs ``Group.ReadWrite.All`` or
WaveGuard as an owner, and a refusal says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.config import RolloutPlan
from shared.errors import PermanentError
from shared.graph.client import get_json, request_json
from shared.rollout.wave_groups import recorded_group_id
from shared.state import AsyncAuditPort, AsyncKeyValuePort, AuditEntry

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["GroupDrift", "rename_drifted_groups", "wave_group_drift"]


@dataclass(frozen=True, slots=True)
class GroupDrift:
    """A wave whose group is called ``current`` in the tenant and ``planned`` in the plan."""

    wave: str
    group_id: str
    current: str
    planned: str

    def __str__(self) -> str:
        where = f"wave {self.wave}: group {self.group_id}"
        return f"{where} is named {self.current!r}, the plan says {self.planned!r}"

    def to_dict(self) -> dict[str, str]:
        return {"wave": self.wave, "groupId": self.group_id, "current": self.current, "planned": self.planned}


async def wave_group_drift(
    client: GraphServiceClient, plan: RolloutPlan, kv: AsyncKeyValuePort
) -> list[GroupDrift]:
    """Every wave whose group (by recorded or configured id) is named otherwise than in the plan.

    Raises:
        RetryableError / PermanentError: Graph or the store failed.
    """
    drifts: list[GroupDrift] = []
    for wave in plan.waves:
        planned = wave.group.display_name
        group_id = wave.group.id or await recorded_group_id(kv, wave.name)
        if not planned or not group_id:
            continue
        group = await get_json(client, f"/groups/{group_id}?$select=id,displayName")
        current = str((group or {}).get("displayName") or "")
        if group is not None and current != planned:
            drifts.append(GroupDrift(wave.name, group_id, current, planned))
    return drifts


async def rename_drifted_groups(
    client: GraphServiceClient,
    drifts: list[GroupDrift],
    *,
    audit: AsyncAuditPort,
    actor: str,
    correlation_id: str,
) -> list[GroupDrift]:
    """Rename each drifted group to the plan's name (audited ``wave.group.rename``); returns them.

    Raises:
        PermanentError: Graph refused a rename (the message names the permission it needs).
        RetryableError: Graph failed; renames done so far stay and a rerun finishes the rest.
    """
    for drift in drifts:
        try:
            await request_json(
                client,
                "PATCH",
                f"/groups/{drift.group_id}",
                {"displayName": drift.planned},
                operation="rename wave group",
            )
        except PermanentError as exc:
            if exc.context.get("status") == 403:
                raise PermanentError(
                    f"{drift}: Graph refused the rename; WaveGuard renames groups it owns (Group.Create); "
                    "for this group grant Group.ReadWrite.All or make WaveGuard an owner",
                    wave=drift.wave,
                ) from None
            raise
        await audit.append(
            AuditEntry(
                actor,
                "wave.group.rename",
                drift.group_id,
                f"the plan renames the group of wave {drift.wave}",
                correlation_id=correlation_id,
                details=drift.to_dict(),
            )
        )
    return drifts
