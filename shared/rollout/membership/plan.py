"""Desired versus actual members: the adds and removals of one run, within the blast radius."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from shared.config import Wave
from shared.errors import SafetyViolationError
from shared.rollout.membership.desired import DesiredMembers

__all__ = ["MembershipPlan", "plan_membership"]


@dataclass(frozen=True, slots=True)
class MembershipPlan:
    """What one run changes in the wave's group, and what it leaves alone (and why)."""

    wave: str
    group_id: str
    adds: tuple[str, ...]
    removes: tuple[str, ...]
    kept: tuple[str, ...]
    ignored: tuple[str, ...]
    break_glass_skipped: tuple[str, ...]

    @property
    def changes(self) -> int:
        """Membership writes the plan asks for (members, not requests)."""
        return len(self.adds) + len(self.removes)


def plan_membership(
    wave: Wave,
    group_id: str,
    desired: DesiredMembers,
    actual: Iterable[str],
    *,
    enforced_waves: Collection[str],
) -> MembershipPlan:
    """Adds (desired, not in the group) and removals (in the group, not desired).

    Never lower protection (the onboarding rule): a member of an enforced wave whose new wave is
    not enforced (or who has none) stays. Group members that are not directory users (nested
    groups, objects we cannot classify) are left alone. Break-glass members are always removed.

    Raises:
        SafetyViolationError: the run would change more members than the wave's ``blastRadius``.
    """
    current = set(actual)
    adds = sorted(desired.members - current)
    enforced = wave.name in enforced_waves
    removes: list[str] = []
    kept: list[str] = []
    ignored: list[str] = []
    for member in sorted(current - desired.members):
        if member not in desired.assigned:
            ignored.append(member)
            continue
        new_wave = desired.assigned[member]
        is_break_glass = member in desired.break_glass_skipped
        if enforced and not is_break_glass and (new_wave is None or new_wave not in enforced_waves):
            kept.append(member)
        else:
            removes.append(member)
    plan = MembershipPlan(
        wave.name,
        group_id,
        tuple(adds),
        tuple(removes),
        tuple(kept),
        tuple(ignored),
        desired.break_glass_matched,
    )
    if plan.changes > wave.blast_radius:
        raise SafetyViolationError(
            f"wave {wave.name}: the sync would add {len(adds)} and remove {len(removes)} members "
            f"({plan.changes}), above its blastRadius of {wave.blast_radius}; refusing the run",
            rule="blast-radius",
            wave=wave.name,
            adds=len(adds),
            removes=len(removes),
            blast_radius=wave.blast_radius,
        )
    return plan
