"""The wave groups WaveGuard created, recorded so every reader finds the same one.

``wave-groups/<wave>`` holds ``{"groupId", "createdAt"}`` once WaveGuard created the wave's
target group (named by displayName in the plan), ``{"creatingSince"}`` while a worker creates it,
and ``"orphans"``: groups a worker that lost a creation race made and still has to delete.
Readers resolve a wave's group by this record before its displayName, so a duplicate of the
name left by a lost race never makes the name ambiguous for them.
"""

from __future__ import annotations

from typing import Any, Final

from shared.state import KeyValuePort

__all__ = ["WAVE_GROUPS_NAMESPACE", "recorded_group_id"]

WAVE_GROUPS_NAMESPACE: Final = "wave-groups"


def recorded_group_id(kv: KeyValuePort, wave: str) -> str | None:
    """The id of the group WaveGuard created for ``wave``, or None (never created, or creating now).

    Raises:
        RetryableError: the store is unavailable.
    """
    stored = kv.get(WAVE_GROUPS_NAMESPACE, wave)
    value: Any = stored.value if stored is not None else None
    group_id = value.get("groupId") if isinstance(value, dict) else None
    return group_id if isinstance(group_id, str) and group_id else None
