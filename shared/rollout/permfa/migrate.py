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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.errors import BusyError, SafetyViolationError
from shared.graph.batch import BatchClient
from shared.graph.client import get_json
from shared.graph.guard import resolve_break_glass_ids
from shared.rollout.permfa.coverage import excluded_group_members, read_coverage
from shared.rollout.permfa.ledger import (
    LedgerEntry,
    Outcome,
    mark,
    read_ledger,
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
from shared.state import AsyncAuditPort, AsyncKeyValuePort, AsyncStores, AuditEntry, utc_now

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
    "wave_lock",
]

RULE: Final = "permfa-wave-not-enforced"
LOCK_PREFIX: Final = "permfa:"
# A run that died holding its wave is taken over after this long (a 10,000-user run takes minutes).
LOCK_EXPIRY: Final = timedelta(hours=2)
# Coverage is read again every this many write batches (20 users each) during a run.
RECHECK_BATCHES: Final = 50
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
    group_id: str | None = None
    # What the plan's CA lets through without MFA (requireMfa.satisfiedBy, trusted networks).
    exemptions: tuple[str, ...] = ()

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
            "caExemptions": list(self.exemptions),
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
    if report.ca_problems:
        raise SafetyViolationError(
            f"WaveGuard's live Require MFA policy does not require MFA of everyone in its groups: "
            f"{'; '.join(report.ca_problems)}. Moving users off per-user MFA could leave them without "
            "MFA; fix the policy (`waveguard policies plan` shows the changes) and run again.",
            rule=RULE,
            wave=wave,
            problems=list(report.ca_problems),
        )
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
        group_id=row.group_id,
        exemptions=report.ca_exemptions,
    )


async def migrate(
    client: GraphServiceClient,
    plan: RolloutPlan,
    stores: AsyncStores,
    wave: str,
    *,
    actor: str,
    correlation_id: str,
    decided: MigrationPlan | None = None,
    progress: Progress | None = None,
    writer: StateWriter | None = None,
) -> MigrationResult:
    """Disable per-user MFA for the plan's users (``decided``: the plan the operator confirmed;
    None: plan now). One run per wave at a time. Coverage is read again just before the first write
    and every ``RECHECK_BATCHES`` batches: a wave demoted or a user excluded meanwhile stops the run.
    The ledger is written ahead, then each batch's outcomes are recorded and audited as they come.

    Raises:
        SafetyViolationError: see ``plan_migration``, or coverage changed during the run.
        BusyError: another migrate or rollback of this wave is running.
        RetryableError / PermanentError: Graph or the store failed; what was written is in the
            ledger and the audit log, and rerunning is safe.
    """
    async with wave_lock(stores, wave):
        decided = decided or await plan_migration(client, plan, stores.kv, wave, progress=progress)
        run = f"{utc_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        if not decided.to_disable:
            return MigrationResult(decided, run, (), {}, StateWriteResult())
        members = {m.id: m for m in decided.to_disable}
        await _still_covered(client, plan, decided, members)
        await stores.audit.append(
            AuditEntry(
                actor=actor,
                action="permfa.migrate",
                target=f"wave:{wave}",
                reason=f"moving {len(members)} user(s) off per-user MFA",
                correlation_id=correlation_id,
                details={"run": run, "users": len(members), "exemptions": list(decided.exemptions)},
            )
        )
        pages = await write_ahead(
            stores.kv, wave, run, utc_now(), [(m.id, m.upn, m.state) for m in members.values()]
        )
        previous = {uid: m.state for uid, m in members.items()}
        batches = 0

        async def on_batch(settled: dict[str, str]) -> None:
            nonlocal batches
            outcomes = _outcomes(settled, done="disabled")
            await settle_pages(stores.kv, wave, pages, outcomes)
            await _audit_pages(
                stores.audit, "permfa.disable", wave, run, actor, correlation_id, previous, outcomes
            )
            batches += 1
            if batches % RECHECK_BATCHES == 0:
                await _still_covered(client, plan, decided, members)

        result = StateWriteResult()
        await (writer or StateWriter(BatchClient.for_graph(client, version="beta"))).apply(
            dict.fromkeys(members, "disabled"),
            progress=(lambda d, t: progress("disabling per-user MFA", d, t)) if progress else None,
            result=result,
            on_batch=on_batch,
        )
        await _update_saved_report(stores.kv, wave, {uid: members[uid].state for uid in result.written})
        return MigrationResult(decided, run, tuple(result.written), result.failed, result)


async def _still_covered(
    client: GraphServiceClient, plan: RolloutPlan, decided: MigrationPlan, members: Mapping[str, Member]
) -> None:
    """Coverage read again (one paced policy list, the excluded groups' members): the wave still
    enforced by the live policy, nobody to be moved excluded from it.

    Raises:
        SafetyViolationError: it is not.
    """
    coverage = await read_coverage(client, plan)
    lost = [m.upn or m.id for m in members.values() if not coverage.covers(decided.group_id, m.id)]
    if lost:
        why = f": {'; '.join(coverage.problems)}" if coverage.problems else ""
        raise SafetyViolationError(
            f"Conditional Access no longer covers {len(lost)} user(s) of wave {decided.wave!r} "
            f"(e.g. {', '.join(lost[:3])}){why}; stopped before moving them off per-user MFA",
            rule=RULE,
            wave=decided.wave,
        )


def _outcomes(settled: Mapping[str, str], *, done: Outcome) -> dict[str, tuple[Outcome, str]]:
    return {uid: (done, "") if outcome == "ok" else ("failed", outcome) for uid, outcome in settled.items()}


@asynccontextmanager
async def wave_lock(stores: AsyncStores, wave: str) -> AsyncIterator[None]:
    """One ``migrate`` or ``rollback`` per wave at a time (a run that died is taken over later).

    Raises:
        BusyError: another run holds the wave.
    """
    key = f"{LOCK_PREFIX}{wave}"
    claim = await stores.idempotency.claim(key, ttl=LOCK_EXPIRY, in_progress_expiry=LOCK_EXPIRY)
    if not claim.acquired:
        raise BusyError(
            f"another `permfa migrate` or `rollback` of wave {wave!r} is running "
            f"(for {claim.age.total_seconds():.0f} s); retry when it has finished",
            retry_after=30.0,
        )
    try:
        yield
    finally:
        await stores.idempotency.release(key)


async def plan_rollback(
    client: GraphServiceClient, plan: RolloutPlan, kv: AsyncKeyValuePort, wave: str
) -> RollbackPlan:
    """The users the ledger says WaveGuard disabled (or was about to) and not restored since;
    break-glass accounts and members of the exclusion group today are refused, never written.

    Raises:
        RetryableError / PermanentError: Graph or the store failed.
    """
    ids = await resolve_break_glass_ids(plan.break_glass, lambda path: get_json(client, path))
    protected = set(ids.account_ids) | await excluded_group_members(client, {ids.exclusion_group_id})
    entries, unreadable = await read_ledger(kv, wave)
    restore: list[LedgerEntry] = []
    refused: dict[str, str] = {f"row {i + 1}": why for i, why in enumerate(unreadable)}
    for entry in entries.values():
        if entry.outcome not in ("disabled", "pending"):
            continue
        if entry.user_id.lower() in protected:
            refused[entry.user_id] = (
                "break-glass account or exclusion group member: left as the tenant set it"
            )
        elif entry.previous not in RESTORABLE:
            refused[entry.user_id] = f"the ledger holds {entry.previous!r}, not a state WaveGuard changes"
        else:
            restore.append(entry)
    return RollbackPlan(wave, tuple(sorted(restore, key=lambda e: e.user_id)), refused)


async def rollback(
    client: GraphServiceClient,
    plan: RolloutPlan,
    stores: AsyncStores,
    wave: str,
    *,
    actor: str,
    correlation_id: str,
    decided: RollbackPlan | None = None,
    progress: Progress | None = None,
    writer: StateWriter | None = None,
) -> RollbackResult:
    """Restore every recorded user's previous state, then read the states back. Only a user found
    in the restored state (or ``enforced`` where ``enabled`` was restored: Graph enforces per-user
    MFA at once for a user already registered) is marked restored; anyone else is reported failed
    and stays in the ledger for the next rollback.

    Raises:
        BusyError: another migrate or rollback of this wave is running.
        RetryableError / PermanentError: Graph or the store failed; rerunning is safe.
    """
    async with wave_lock(stores, wave):
        decided = decided or await plan_rollback(client, plan, stores.kv, wave)
        if not decided.to_restore:
            return RollbackResult(decided, {}, {}, StateWriteResult())
        entries = {e.user_id: e for e in decided.to_restore}
        result = StateWriteResult()
        try:
            await (writer or StateWriter(BatchClient.for_graph(client, version="beta"))).apply(
                {e.user_id: e.previous for e in decided.to_restore},
                progress=(lambda d, t: progress("restoring per-user MFA", d, t)) if progress else None,
                result=result,
            )
        finally:
            now = await read_states(BatchClient.for_graph(client, version="beta"), result.written)
            restored = {
                uid: now[uid].state
                for uid in result.written
                if _restored(entries[uid].previous, now[uid].state)
            }
            failed = dict(result.failed)
            for uid in result.written:
                if uid not in restored:
                    failed[uid] = f"read back as {now[uid].state} {now[uid].error}".strip()
            await mark(stores.kv, wave, {uid: (entries[uid], "restored", "") for uid in restored})
            outcomes: dict[str, tuple[Outcome, str]] = {uid: ("restored", "") for uid in restored}
            outcomes |= {uid: ("failed", why) for uid, why in failed.items()}
            previous = {uid: e.previous for uid, e in entries.items()}
            run = f"rollback-{utc_now():%Y%m%dT%H%M%S}"
            await _audit_pages(
                stores.audit,
                "permfa.restore",
                wave,
                run,
                actor,
                correlation_id,
                previous,
                outcomes,
                state_key="restoreTo",
            )
            await _update_saved_report(stores.kv, wave, {}, restored=restored)
        return RollbackResult(decided, restored, failed, result)


def _restored(wanted: str, found: str) -> bool:
    return found == wanted or (wanted == "enabled" and found == "enforced")


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
