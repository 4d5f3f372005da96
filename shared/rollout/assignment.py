"""Wave assignment: which rollout wave a user belongs to, decided from facts alone (no I/O).

One function for every caller: the HR onboarding worker (``new_hire=True`` applies the plan's
``newHires`` policy) and the wave membership sync (selectors, then the catch-all wave). Group
membership arrives as facts (ids and display names) so the caller decides how to read Graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from shared.config import AUTO_WAVE, RolloutPlan, Wave, is_guid

__all__ = ["Assignment", "AssignmentReason", "UserFacts", "assign_wave"]

AssignmentReason = Literal[
    "selector", "new-hire-wave", "fallback-wave", "catch-all", "break-glass", "unmatched"
]


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What assignment may look at: identity, HR attributes and direct group memberships."""

    user_id: str | None = None
    user_principal_name: str | None = None
    department: str | None = None
    country: str | None = None
    group_ids: frozenset[str] = field(default_factory=frozenset)
    group_names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        *,
        user_id: str | None = None,
        user_principal_name: str | None = None,
        department: str | None = None,
        country: str | None = None,
        groups: Iterable[tuple[str, str | None]] = (),
    ) -> UserFacts:
        """Facts with memberships given as ``(group id, display name)`` pairs."""
        pairs = list(groups)
        return cls(
            user_id=user_id,
            user_principal_name=user_principal_name,
            department=department,
            country=country,
            group_ids=frozenset(gid.lower() for gid, _ in pairs if gid),
            group_names=frozenset(name.casefold() for _, name in pairs if name),
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """The outcome: the wave (None: break-glass or unmatched), why, and which selector matched."""

    wave: str | None
    reason: AssignmentReason
    selector: str | None = None

    @property
    def assigned(self) -> bool:
        """True when the user belongs to a wave."""
        return self.wave is not None


def assign_wave(plan: RolloutPlan, facts: UserFacts, *, new_hire: bool = False) -> Assignment:
    """The wave ``facts`` belong to: the first wave (plan order) whose selectors match, else the
    catch-all wave; break-glass accounts are never assigned.

    With ``new_hire`` the plan's ``newHires`` policy applies first: an explicit ``newHires.wave``
    wins; ``auto`` uses the selectors, then ``fallbackWave``, then the catch-all wave.
    """
    if plan.break_glass.is_break_glass(user_id=facts.user_id, upn=facts.user_principal_name):
        return Assignment(None, "break-glass")
    policy = plan.new_hires
    if new_hire and policy.wave != AUTO_WAVE:
        return Assignment(policy.wave, "new-hire-wave", f"newHires.wave={policy.wave}")
    for wave in plan.waves:
        if wave.catch_all:
            continue
        matched = _matching_selector(wave, facts)
        if matched is not None:
            return Assignment(wave.name, "selector", matched)
    if new_hire and policy.fallback_wave is not None:
        return Assignment(
            policy.fallback_wave, "fallback-wave", f"newHires.fallbackWave={policy.fallback_wave}"
        )
    catch_all = plan.catch_all_wave
    if catch_all is not None:
        return Assignment(catch_all.name, "catch-all")
    return Assignment(None, "unmatched")


def _matching_selector(wave: Wave, facts: UserFacts) -> str | None:
    """The first selector of ``wave`` that ``facts`` satisfy, as ``kind=value``; explicit users first."""
    selectors = wave.selectors
    upn = (facts.user_principal_name or "").casefold()
    for user in selectors.users:
        if upn and user.casefold() == upn:
            return f"users={user}"
    for group in selectors.groups:
        if _in_group(group, facts):
            return f"groups={group}"
    department = (facts.department or "").strip().casefold()
    for name in selectors.departments:
        if department and name.strip().casefold() == department:
            return f"departments={name}"
    country = (facts.country or "").strip().upper()
    for code in selectors.countries:
        if country and code == country:
            return f"countries={code}"
    return None


def _in_group(selector: str, facts: UserFacts) -> bool:
    # A selector that looks like a GUID names a group by id; anything else is a display name.
    if is_guid(selector):
        return selector.lower() in facts.group_ids
    return selector.casefold() in facts.group_names
