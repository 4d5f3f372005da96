"""Wave assignment: which rollout wave a user belongs to, decided from facts alone (no I/O).

One function for every caller: the HR onboarding worker (``new_hire=True`` applies the plan's
``newHires`` policy) and the wave membership sync (selectors, then the catch-all wave). Group
membership arrives as facts (ids and display names) so the caller decides how to read Graph.

The plan's selectors and break-glass accounts are compiled once per plan (plans are frozen):
case-folded lookups built once, so assigning 100k users does not case-fold every selector of
every wave for every user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

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
    last = _last_compiled  # (the plan of nearly every call: one identity check, no lookup)
    compiled = last[1] if last is not None and last[0] is plan else _compiled(plan)
    upn = facts.user_principal_name.casefold() if facts.user_principal_name else ""
    if (facts.user_id and facts.user_id.lower() in compiled.break_glass_ids) or (
        upn and upn in compiled.break_glass_upns
    ):
        return _BREAK_GLASS
    if new_hire:
        policy = plan.new_hires
        if policy.wave != AUTO_WAVE:
            return Assignment(policy.wave, "new-hire-wave", f"newHires.wave={policy.wave}")
        matched = compiled.selected(facts, upn)
        if matched is not None:
            return matched
        if policy.fallback_wave is not None:
            return Assignment(
                policy.fallback_wave, "fallback-wave", f"newHires.fallbackWave={policy.fallback_wave}"
            )
        return compiled.otherwise
    return compiled.selected(facts, upn) or compiled.otherwise


_BREAK_GLASS: Final = Assignment(None, "break-glass")
# Within a wave, explicit users come first, then groups, departments and countries; an earlier wave
# always wins. A selector's rank says both: wave index * 4 + kind.
_USERS, _GROUPS, _DEPARTMENTS, _COUNTRIES = range(4)

Ranked = tuple[int, Assignment]


@dataclass(frozen=True, slots=True)
class _CompiledPlan:
    """The plan's selectors merged into lookups, each keeping its best-ranked (earliest) selector,
    with the ``Assignment`` it gives built once."""

    break_glass_ids: frozenset[str]
    break_glass_upns: frozenset[str]
    users: dict[str, Ranked]  # case-folded UPN
    groups: tuple[tuple[int, bool, str, Assignment], ...]  # by rank: (rank, by id, key, assignment)
    departments: dict[str, Ranked]  # stripped, case-folded name
    countries: dict[str, Ranked]
    otherwise: Assignment  # no selector matched: the catch-all wave, else unmatched
    # What each raw department / country value seen so far matched (None: nothing).
    department_hits: dict[str, Ranked | None] = field(default_factory=dict)
    country_hits: dict[str, Ranked | None] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: RolloutPlan) -> _CompiledPlan:
        users: dict[str, Ranked] = {}
        departments: dict[str, Ranked] = {}
        countries: dict[str, Ranked] = {}
        groups: list[tuple[int, bool, str, Assignment]] = []
        selector_waves = [wave for wave in plan.waves if not wave.catch_all]
        for index, wave in enumerate(selector_waves):
            base, selectors = index * 4, wave.selectors
            for user in selectors.users:
                users.setdefault(user.casefold(), (base + _USERS, _selected(wave, f"users={user}")))
            for group in selectors.groups:
                # A selector that looks like a GUID names a group by id; anything else, a display name.
                key = group.lower() if is_guid(group) else group.casefold()
                groups.append((base + _GROUPS, is_guid(group), key, _selected(wave, f"groups={group}")))
            for name in selectors.departments:
                ranked = (base + _DEPARTMENTS, _selected(wave, f"departments={name}"))
                departments.setdefault(name.strip().casefold(), ranked)
            for code in selectors.countries:
                countries.setdefault(code, (base + _COUNTRIES, _selected(wave, f"countries={code}")))
        accounts = plan.break_glass.accounts
        return cls(
            break_glass_ids=frozenset(a.id for a in accounts if a.id),
            break_glass_upns=frozenset(
                a.user_principal_name.casefold() for a in accounts if a.user_principal_name
            ),
            users=users,
            groups=tuple(groups),
            departments=departments,
            countries=countries,
            otherwise=(
                Assignment(plan.catch_all_wave.name, "catch-all")
                if plan.catch_all_wave is not None
                else Assignment(None, "unmatched")
            ),
        )

    def selected(self, facts: UserFacts, upn: str) -> Assignment | None:
        """The assignment of the best-ranked selector ``facts`` satisfy (``upn``: theirs, case-folded);
        None when none does."""
        best: Ranked | None = self.users.get(upn) if upn else None
        if facts.group_ids or facts.group_names:
            for rank, by_id, key, assignment in self.groups:
                if best is not None and rank > best[0]:
                    break
                if key in (facts.group_ids if by_id else facts.group_names):
                    best = (rank, assignment)
                    break
        if facts.department:
            hit = self.department_hits.get(facts.department, _NOT_SEEN)
            if hit is _NOT_SEEN:
                hit = _remember(self.department_hits, facts.department, self.departments, _department_key)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        if facts.country:
            hit = self.country_hits.get(facts.country, _NOT_SEEN)
            if hit is _NOT_SEEN:
                hit = _remember(self.country_hits, facts.country, self.countries, _country_key)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        return best[1] if best is not None else None


# A tenant has a few hundred department and country values, shared by thousands of users: each raw
# value (as Graph spells it) is normalised and looked up once per compiled plan, then remembered.
_NOT_SEEN: Final[Any] = object()
_HITS_KEPT: Final = 4096


def _department_key(raw: str) -> str:
    return raw.strip().casefold()


def _country_key(raw: str) -> str:
    return raw.strip().upper()


def _remember(
    hits: dict[str, Ranked | None], raw: str, lookup: dict[str, Ranked], key: Callable[[str], str]
) -> Ranked | None:
    """The selector ``raw`` matches in ``lookup`` once normalised by ``key``, remembered in ``hits``
    (cleared when full, so a tenant of unusual values costs memory no more than ``_HITS_KEPT``)."""
    normalised = key(raw)
    hit = lookup.get(normalised) if normalised else None  # (a blank value matches nothing)
    if len(hits) >= _HITS_KEPT:
        hits.clear()
    hits[raw] = hit
    return hit


def _selected(wave: Wave, selector: str) -> Assignment:
    return Assignment(wave.name, "selector", selector)


_COMPILED_KEPT: Final = 16
_compiled_plans: dict[int, tuple[RolloutPlan, _CompiledPlan]] = {}
_compiled_lock = threading.Lock()
_last_compiled: tuple[RolloutPlan, _CompiledPlan] | None = None


def _compiled(plan: RolloutPlan) -> _CompiledPlan:
    """The plan's compiled selectors (plans are frozen: compiled once, kept with the plan)."""
    global _last_compiled
    kept = _compiled_plans.get(id(plan))  # (a dict read is atomic; writers take the lock)
    if kept is None or kept[0] is not plan:
        kept = (plan, _CompiledPlan.of(plan))
        with _compiled_lock:
            if len(_compiled_plans) >= _COMPILED_KEPT:
                _compiled_plans.clear()
            _compiled_plans[id(plan)] = kept
    _last_compiled = kept  # (one reference written at once: a reader sees the old pair or this one)
    return kept[1]
