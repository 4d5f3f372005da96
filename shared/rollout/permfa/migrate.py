"""Move a wave's users off per-user MFA once Conditional Access covers them, and put them back.

``migrate`` sets ``perUserMfaState`` to ``disabled`` for the members of one wave who are on
per-user MFA (``enabled`` or ``enforced``), covered by the live "Require MFA" policy (the wave is
enforced, the policy enabled with the wave's group, the member not excluded) and registered for
MFA (the registration report). Everyone else is left alone and listed with the reason:

- the wave is not enforced by CA: the whole run is refused (they would lose MFA);
- break-glass accounts: never written (the Graph guard refuses it too), reported;
- members the policy excludes (e.g. the exclusion group): CA does not cover them;
- members not registered for MFA, and states that could not be read: not guessed.

A run changes at most the wave's ``blastRadius`` users; the rest wait for the next run. Every
user is written ahead into the ledger with the previous state before the first Graph write, and
every change is audited with it. ``rollback`` restores each user's previous state from the ledger
(the newest run that recorded them), whatever the wave's state: putting MFA back is always safe.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shared.errors import SafetyViolationError
from shared.graph.batch import BatchClient
from shared.graph.client import get_json
from shared.graph.guard import resolve_break_glass_ids
from shared.rollout.permfa.ledger import (
    LedgerEntry,
    Outcome,
    latest_entries,
    mark,
    settle_pages,
    write_ahead,
)
from shared.rollout.permfa.report import (
    PERMFA_NAMESPACE,
    REPORT_KEY,
    Member,
    build_report,
)
from shared.rollout.permfa.states import read_states
from shared.rollout.permfa.writer import StateWriter, StateWriteResult
from shared.state import AsyncAuditPort, AsyncKeyValuePort, AuditEntry, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config import RolloutPlan

__all__ = [
    "MigrationPlan",
    "MigrationResult",
    "RollbackPlan",
    "RollbackResult",
    "migrate",
    "plan_migration",
    "plan_rollback",
    "rollback",
]

RULE: Final = "permfa-wave-not-enforced"
RESTORABLE: Final = frozenset({"enabled", "enforced"})
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """What ``migrate`` would change in one wave, and whom it leaves alone and why."""

    wave: str
    blast_radius: int
    to_disable: tuple[Member, ...]
    over_cap: tuple[Member, ...]
    not_registered: tuple[Member, ...]
    excluded_from_ca: tuple[Member, ...]
    unknown: tuple[Member, ...]
    break_glass: tuple[Member, ...]
    states: Mapping[str, int] = field(default_factory=dict)
    read_requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        def users(members: Sequence[Member]) -> list[dict[str, Any]]:
            return [m.to_dict() for m in members]

        return {
            "wave": self.wave,
            "blastRadius": self.blast_radius,
            "states": dict(self.states),
            "toDisable": users(self.to_disable),
            "overBlastRadius": users(self.over_cap),
            "notRegistered": users(self.not_registered),
            "excludedFromCa": users(self.excluded_from_ca),
            "unknown": users(self.unknown),
            "breakGlassLeftAlone": users(self.break_glass),
        }


@dataclass(frozen=True, slots=True)
class MigrationResult:
    plan: MigrationPlan
    run: str
    disabled: tuple[str, ...]
    failed: Mapping[str, str]
    write: StateWriteResult

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "run": self.run,
            "disabled": list(self.disabled),
            "failed": dict(self.failed),
            "writeRequests": self.write.write_requests,
            "throttled": self.write.throttled,
        }


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    wave: str
    to_restore: tuple[LedgerEntry, ...]
    refused: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "toRestore": [
                {"id": e.user_id, "userPrincipalName": e.upn, "restoreTo": e.previous, "run": e.run}
                for e in self.to_restore
            ],
            "refused": dict(self.refused),
        }


@dataclass(frozen=True, slots=True)
class RollbackResult:
    plan: RollbackPlan
    restored: Mapping[str, str]
    failed: Mapping[str, str]
    write: StateWriteResult

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "restored": dict(self.restored),
            "failed": dict(self.failed),
            "writeRequests": self.write.write_requests,
        }


async def plan_migration(
    client: GraphServiceClient,
    plan: RolloutPlan,
    kv: AsyncKeyValuePort,
    wave: str,
    *,
    progress: Progress | None = None,
) -> MigrationPlan:
    """Read the wave (members, states, CA coverage, registration) and decide; nothing is written.

    Raises:
        SafetyViolationError: CA does not enforce MFA for the wave: nobody may lose per-user MFA.
        RetryableError / PermanentError: Graph or the store failed.
    """
    from shared.rollout.lifecycle.graph_evidence import GraphEvidence

    def states_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("reading per-user MFA states", done, total)

    report = await build_report(client, plan, kv, wave=wave, progress=states_progress, save=False)
    row = report.waves[0]
    if not row.ca_enforced:
        raise SafetyViolationError(
            f"wave {wave!r} is {row.wave_state} and WaveGuard's Require MFA policy does not enforce MFA "
            f"for its group yet: moving its users off per-user MFA would leave them without MFA. "
            f"Enforce the wave first (`waveguard waves evaluate`, then `waveguard policies apply`).",
            rule=RULE,
            wave=wave,
            wave_state=row.wave_state,
        )
    evidence = GraphEvidence(client, plan)
    registered = {uid.lower() for uid in await evidence.registered_users()}
    cap = plan.wave(wave).blast_radius
    ready = row.ready_to_move
    eligible = [m for m in ready if m.id.lower() in registered]
    return MigrationPlan(
        wave=wave,
        blast_radius=cap,
        to_disable=tuple(eligible[:cap]),
        over_cap=tuple(eligible[cap:]),
        not_registered=tuple(m for m in ready if m.id.lower() not in registered),
        excluded_from_ca=tuple(m for m in row.members if m.on_per_user_mfa and m.excluded_from_ca),
        unknown=tuple(m for m in row.members if m.state == "unknown"),
        break_glass=report.break_glass,
        states=row.counts,
    )


async def migrate(
    client: GraphServiceClient,
    plan: RolloutPlan,
    kv: AsyncKeyValuePort,
    audit: AsyncAuditPort,
    wave: str,
    *,
    actor: str,
    correlation_id: str,
    progress: Progress | None = None,
    writer: StateWriter | None = None,
) -> MigrationResult:
    """Plan, write the ledger ahead, disable, record each outcome and audit it.

    Raises:
        SafetyViolationError: see ``plan_migration``.
        RetryableError / PermanentError: Graph or the store failed; what was written is in the
            ledger and the audit log, and rerunning is safe.
    """
    decided = await plan_migration(client, plan, kv, wave, progress=progress)
    run = f"{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    writer = writer or StateWriter(BatchClient.for_graph(client, version="beta"))
    if not decided.to_disable:
        return MigrationResult(decided, run, (), {}, StateWriteResult())
    at = utc_now()
    members = {m.id: m for m in decided.to_disable}
    pages = await write_ahead(kv, wave, run, at, [(m.id, m.upn, m.state) for m in decided.to_disable])
    result = StateWriteResult()
    try:
        await writer.apply(
            {m.id: "disabled" for m in decided.to_disable},
            progress=(lambda d, t: progress("disabling per-user MFA", d, t)) if progress else None,
            result=result,
        )
    finally:
        outcomes: dict[str, tuple[Outcome, str]] = {
            uid: ("disabled", "") if outcome == "ok" else ("failed", outcome)
            for uid, outcome in result.outcomes.items()
        }
        await settle_pages(kv, wave, pages, outcomes)
        previous = {uid: m.state for uid, m in members.items()}
        await _audit_pages(audit, "permfa.disable", wave, run, actor, correlation_id, previous, outcomes)
        await _update_saved_report(kv, wave, {uid: members[uid].state for uid in result.written})
    return MigrationResult(decided, run, tuple(result.written), result.failed, result)


async def plan_rollback(
    client: GraphServiceClient, plan: RolloutPlan, kv: AsyncKeyValuePort, wave: str
) -> RollbackPlan:
    """The users the ledger says WaveGuard disabled (or was about to) and not restored since.

    Raises:
        RetryableError / PermanentError: Graph or the store failed.
    """
    ids = await resolve_break_glass_ids(plan.break_glass, lambda path: get_json(client, path))
    restore: list[LedgerEntry] = []
    refused: dict[str, str] = {}
    for entry in (await latest_entries(kv, wave)).values():
        if entry.outcome not in ("disabled", "pending"):
            continue
        if entry.user_id.lower() in ids.account_ids:
            refused[entry.user_id] = "break-glass account: left as the tenant set it"
        elif entry.previous not in RESTORABLE:
            refused[entry.user_id] = f"the ledger holds {entry.previous!r}, not a state WaveGuard changes"
        else:
            restore.append(entry)
    return RollbackPlan(wave, tuple(sorted(restore, key=lambda e: e.user_id)), refused)


async def rollback(
    client: GraphServiceClient,
    plan: RolloutPlan,
    kv: AsyncKeyValuePort,
    audit: AsyncAuditPort,
    wave: str,
    *,
    actor: str,
    correlation_id: str,
    progress: Progress | None = None,
    writer: StateWriter | None = None,
) -> RollbackResult:
    """Restore every recorded user's previous state, then read the states back: Graph turns
    ``enabled`` into ``enforced`` for a user who registered MFA meanwhile, and that is reported.

    Raises:
        RetryableError / PermanentError: Graph or the store failed; rerunning is safe.
    """
    decided = await plan_rollback(client, plan, kv, wave)
    writer = writer or StateWriter(BatchClient.for_graph(client, version="beta"))
    if not decided.to_restore:
        return RollbackResult(decided, {}, {}, StateWriteResult())
    entries = {e.user_id: e for e in decided.to_restore}
    result = StateWriteResult()
    try:
        await writer.apply(
            {e.user_id: e.previous for e in decided.to_restore},
            progress=(lambda d, t: progress("restoring per-user MFA", d, t)) if progress else None,
            result=result,
        )
    finally:
        # A user whose restore failed keeps their entry as it was: the next rollback tries again.
        done: dict[str, tuple[LedgerEntry, Outcome, str]] = {
            uid: (entries[uid], "restored", "") for uid in result.written
        }
        await mark(kv, wave, done)
        run = f"rollback-{utc_now():%Y%m%dT%H%M%S}"
        outcomes: dict[str, tuple[Outcome, str]] = {uid: ("restored", "") for uid in result.written}
        outcomes |= {uid: ("failed", why) for uid, why in result.failed.items()}
        previous = {uid: e.previous for uid, e in entries.items()}
        await _audit_pages(
            audit,
            "permfa.restore",
            wave,
            run,
            actor,
            correlation_id,
            previous,
            outcomes,
            state_key="restoreTo",
        )
    now_states = await read_states(BatchClient.for_graph(client, version="beta"), result.written)
    restored = {uid: now_states[uid].state for uid in result.written}
    await _update_saved_report(kv, wave, {}, restored=restored)
    return RollbackResult(decided, restored, result.failed, result)


async def _audit_pages(
    audit: AsyncAuditPort,
    action: str,
    wave: str,
    run: str,
    actor: str,
    correlation_id: str,
    previous: Mapping[str, str],
    outcomes: Mapping[str, tuple[Outcome, str]],
    *,
    state_key: str = "previous",
) -> None:
    """One audit entry per 20 users: each user's state before (or, restoring, after) and outcome."""
    rows = [
        {"id": uid, state_key: previous[uid], "outcome": outcome, **({"detail": d} if d else {})}
        for uid, (outcome, d) in sorted(outcomes.items())
    ]
    for start in range(0, len(rows), 20):
        chunk = rows[start : start + 20]
        tally = Counter(str(r["outcome"]) for r in chunk)
        await audit.append(
            AuditEntry(
                actor=actor,
                action=action,
                target=f"wave:{wave}",
                reason=", ".join(f"{n} {o}" for o, n in sorted(tally.items())),
                correlation_id=correlation_id,
                details={"run": run, "users": chunk},
            )
        )


async def _update_saved_report(
    kv: AsyncKeyValuePort,
    wave: str,
    disabled_from: Mapping[str, str],
    *,
    restored: Mapping[str, str] | None = None,
) -> None:
    """Keep the saved report's counts for the wave true after a write (without reading every user
    again): ``disabled_from[user] = previous state``, ``restored[user] = state now``."""
    stored = await kv.get(PERMFA_NAMESPACE, REPORT_KEY)
    if stored is None or not isinstance(stored.value, dict):
        return
    saved = dict(stored.value)
    rows = [dict(r) for r in saved.get("waves") or []]
    for row in rows:
        if row.get("wave") != wave:
            continue
        states = Counter({k: int(v) for k, v in (row.get("states") or {}).items()})
        for previous in disabled_from.values():
            states[previous] -= 1
            states["disabled"] += 1
        for now in (restored or {}).values():
            states["disabled"] -= 1
            states[now] += 1
        row["states"] = {k: max(0, v) for k, v in states.items()}
        moved = len(disabled_from) - len(restored or {})
        row["readyToMove"] = max(0, int(row.get("readyToMove") or 0) - moved)
        row["migrated"] = max(0, int(row.get("migrated") or 0) + moved)
        row["done"] = bool(row.get("caEnforced")) and row["readyToMove"] == 0
    await kv.put(PERMFA_NAMESPACE, REPORT_KEY, {**saved, "waves": rows})
