"""Where per-user MFA still stands, wave by wave, against what Conditional Access covers.

For each wave: its members (the wave group), each member's per-user MFA state, and whether CA
enforces MFA for the wave yet (the wave is ``enforced`` and WaveGuard's live "Require MFA" policy
is enabled with the wave's group in it). A member on per-user MFA (``enabled`` or ``enforced``)
whom CA does not cover (the wave is not enforced yet, or the live policy excludes the member, e.g.
through the exclusion group) depends on per-user MFA: moving them off it now would leave them
without MFA. One CA covers is required twice (and prompted on every sign-in): ready to move off.
Break-glass accounts are reported apart and always left as the tenant set them.

The last report is kept (namespace ``permfa``, key ``report``) so ``waves status`` and ``doctor``
can show the counts without reading every user again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.config import RolloutPlan
from shared.graph.batch import BatchClient
from shared.graph.client import get_json
from shared.graph.guard import resolve_break_glass_ids
from shared.rollout.membership.reads import iter_member_rows
from shared.rollout.permfa.coverage import LiveCoverage, read_coverage
from shared.rollout.permfa.ledger import migrated_count
from shared.rollout.permfa.states import KNOWN_STATES, PerUserState, StateRead, read_states
from shared.rollout.wave_groups import recorded_group_id
from shared.rollout.wave_state import WaveState, read_wave_state
from shared.state import AsyncKeyValuePort, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "PERMFA_NAMESPACE",
    "REPORT_KEY",
    "PerUserMfaReport",
    "WaveMfa",
    "build_report",
    "last_report",
    "summary_line",
]

PERMFA_NAMESPACE: Final = "permfa"
REPORT_KEY: Final = "report"
ON: Final = frozenset({"enabled", "enforced"})


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    upn: str
    state: PerUserState
    error: str = ""
    # The live Require MFA policy leaves this member out (excludeUsers or an excluded group).
    excluded_from_ca: bool = False

    @property
    def on_per_user_mfa(self) -> bool:
        return self.state in ON

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "userPrincipalName": self.upn, "state": self.state}
        if self.error:
            row["error"] = self.error
        if self.excluded_from_ca:
            row["excludedFromCa"] = True
        return row


@dataclass(frozen=True, slots=True)
class WaveMfa:
    """One wave: its CA state, its members' per-user states."""

    wave: str
    wave_state: str
    ca_enforced: bool
    group_id: str | None
    members: tuple[Member, ...] = ()
    # Users WaveGuard moved off per-user MFA in this wave and has not put back (from the ledger).
    migrated: int = 0

    @property
    def counts(self) -> dict[str, int]:
        tally = Counter(m.state for m in self.members)
        return {state: tally.get(state, 0) for state in (*KNOWN_STATES, "unknown")}

    def covered(self, member: Member) -> bool:
        """True when CA requires MFA of this member (the wave is enforced, the member not excluded)."""
        return self.ca_enforced and not member.excluded_from_ca

    @property
    def depends_on_per_user(self) -> tuple[Member, ...]:
        """On per-user MFA and not covered by CA: keep them on it for now."""
        return tuple(m for m in self.members if m.on_per_user_mfa and not self.covered(m))

    @property
    def ready_to_move(self) -> tuple[Member, ...]:
        """On per-user MFA and covered by CA: prompted twice over, ready to move off it."""
        return tuple(m for m in self.members if m.on_per_user_mfa and self.covered(m))

    def to_dict(self, *, with_members: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "wave": self.wave,
            "waveState": self.wave_state,
            "caEnforced": self.ca_enforced,
            "groupId": self.group_id,
            "members": len(self.members),
            "states": self.counts,
            "dependOnPerUserMfa": len(self.depends_on_per_user),
            "readyToMove": len(self.ready_to_move),
            "migrated": self.migrated,
            # An enforced wave is done when nobody CA covers is still on per-user MFA.
            "done": self.ca_enforced and not self.ready_to_move,
        }
        if with_members:
            body["notCoveredByCa"] = [m.to_dict() for m in self.depends_on_per_user]
            body["readyToMoveUsers"] = [m.to_dict() for m in self.ready_to_move]
            body["unknown"] = [m.to_dict() for m in self.members if m.state == "unknown"]
        return body


@dataclass(frozen=True, slots=True)
class PerUserMfaReport:
    at: datetime
    waves: tuple[WaveMfa, ...]
    break_glass: tuple[Member, ...] = field(default_factory=tuple)
    # Why the live Require MFA policy covers nobody for sure, and what the plan lets through.
    ca_problems: tuple[str, ...] = ()
    ca_exemptions: tuple[str, ...] = ()

    def to_dict(self, *, with_members: bool = True) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "waves": [w.to_dict(with_members=with_members) for w in self.waves],
            "breakGlass": [{**m.to_dict(), "leftAlone": True} for m in self.break_glass],
            "caProblems": list(self.ca_problems),
            "caExemptions": list(self.ca_exemptions),
        }


async def build_report(
    client: GraphServiceClient,
    plan: RolloutPlan,
    kv: AsyncKeyValuePort,
    *,
    wave: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    save: bool = True,
) -> PerUserMfaReport:
    """Read the waves' members and every member's state (20 per beta ``$batch``).

    Raises:
        RetryableError / PermanentError: Graph or the store failed.
    """
    ids = await resolve_break_glass_ids(plan.break_glass, lambda path: get_json(client, path))
    coverage = await read_coverage(client, plan)
    waves: list[tuple[str, str, str | None, list[dict[str, Any]]]] = []
    for planned in plan.waves:
        if wave is not None and planned.name != wave:
            continue
        status = await read_wave_state(kv, planned.name)
        group_id = await _wave_group_id(client, kv, planned)
        rows = (
            [row async for row in iter_member_rows(client, group_id, ("id", "userPrincipalName"))]
            if group_id
            else []
        )
        waves.append((planned.name, status.state.value, group_id, rows))
    member_ids = [str(row["id"]) for _, _, _, rows in waves for row in rows]
    break_glass = sorted(ids.account_ids)
    states = await read_states(
        BatchClient.for_graph(client, version="beta"), [*member_ids, *break_glass], progress=progress
    )
    migrated = {name: await migrated_count(kv, name) for name, _, _, _ in waves}
    report = PerUserMfaReport(
        at=utc_now(),
        waves=tuple(
            WaveMfa(
                name,
                state,
                # Enforced in the store AND by the live policy, with nothing in it WaveGuard cannot
                # account for: a promotion whose policy write failed never counts as covered.
                state == WaveState.ENFORCED.value
                and not coverage.problems
                and (group_id or "").lower() in coverage.include_groups,
                group_id,
                tuple(
                    _member(row, states, coverage)
                    for row in rows
                    if str(row["id"]).lower() not in ids.account_ids
                ),
                migrated[name],
            )
            for name, state, group_id, rows in waves
        ),
        break_glass=tuple(_member({"id": user_id}, states, coverage) for user_id in break_glass),
        ca_problems=coverage.problems,
        ca_exemptions=coverage.exemptions,
    )
    if save and wave is None:
        await kv.put(PERMFA_NAMESPACE, REPORT_KEY, report.to_dict(with_members=False))
    return report


async def _wave_group_id(client: GraphServiceClient, kv: AsyncKeyValuePort, wave: Any) -> str | None:
    """The plan's group id, else the one WaveGuard recorded creating, else the group of that name."""
    recorded = wave.group.id or await recorded_group_id(kv, wave.name)
    if recorded:
        return str(recorded)
    if not wave.group.display_name:
        return None
    from shared.graph.directory import find_group

    found = await find_group(client, display_name=wave.group.display_name)
    return str(found.id) if found is not None and found.id else None


def _member(row: dict[str, Any], states: dict[str, StateRead], coverage: LiveCoverage) -> Member:
    user_id = str(row["id"])
    read = states.get(user_id) or StateRead("unknown", "not read")
    excluded = user_id.lower() in coverage.excluded_users
    return Member(user_id, str(row.get("userPrincipalName") or ""), read.state, read.error, excluded)


async def last_report(kv: AsyncKeyValuePort) -> dict[str, Any] | None:
    """The counts the last ``permfa report`` saved, or None."""
    stored = await kv.get(PERMFA_NAMESPACE, REPORT_KEY)
    return stored.value if stored is not None and isinstance(stored.value, dict) else None


def summary_line(saved: dict[str, Any]) -> str:
    """One line per saved report: when, and per wave whether per-user MFA still holds it back.

    An enforced wave is done only when nobody CA covers is still on per-user MFA."""
    parts = []
    for row in saved.get("waves") or []:
        wave = row.get("wave")
        states = row.get("states") or {}
        on = int(states.get("enabled", 0)) + int(states.get("enforced", 0))
        ready = int(row.get("readyToMove") or 0)
        migrated = int(row.get("migrated") or 0)
        moved = f"{migrated} moved off" if migrated else "none moved off yet"
        if not row.get("caEnforced"):
            parts.append(
                f"{wave}: {on} on per-user MFA, depend on it (CA not enforced yet)" if on else f"{wave}: none"
            )
        elif ready:
            parts.append(
                f"{wave}: NOT DONE, {ready} still on per-user MFA although CA enforces the wave ({moved}; "
                f"`waveguard permfa migrate {wave}`)"
            )
        else:
            kept = f", {on} kept (CA excludes them)" if on else ""
            parts.append(f"{wave}: done ({moved}{kept})")
    return f"per-user MFA (report of {saved.get('at', '?')}): " + "; ".join(parts)
