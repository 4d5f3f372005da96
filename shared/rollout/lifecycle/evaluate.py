"""The rollout timer's work: each wave's next step, computed from its gates and applied once.

For each wave in plan order: start registering (first wave, or the previous one is enforced),
move to report-only once the registration gate passes, promote once every gate passes and the
plan says ``promotion: auto`` or an approval is recorded, otherwise hold naming the failing
gates. A promotion is a policy change: the wave state is written, then the CA baseline is
synced. A "sync pending" marker is written before any state change and cleared after the sync,
so a run that dies between the two is finished by the next one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from shared.config.plan import RolloutPlan
from shared.config.waves import Wave
from shared.errors import NotFoundError, SafetyViolationError, WaveGuardError
from shared.helpdesk.store import TicketRead, prune_tickets, read_tickets
from shared.rollout.lifecycle.announcements import (
    Announcer,
    AnnounceReport,
    Snapshot,
    communications_enabled,
    stage_for,
)
from shared.rollout.lifecycle.approvals import approval_of, clear_approval
from shared.rollout.lifecycle.gates import (
    ANNOUNCED_GATE,
    AnnouncementProgress,
    GateResult,
    SignInResult,
    WaveEvidence,
    evaluate_gates,
    open_critical_alerts,
)
from shared.rollout.lifecycle.nudges import NudgeMail, NudgeReport, send_nudges
from shared.rollout.lifecycle.states import InvalidTransitionError, transition_wave
from shared.rollout.policies.render import DARK_PHASES, POLICY_TITLES
from shared.rollout.wave_state import WaveState, WaveStatus, read_wave_state
from shared.state import AsyncStores, AuditEntry, ConcurrencyError

__all__ = [
    "SYNC_NAMESPACE",
    "Action",
    "EvaluationResult",
    "Evidence",
    "GroupEnsurer",
    "LifecycleDeps",
    "MembershipStart",
    "PolicySync",
    "WaveDecision",
    "evaluate_waves",
    "report_only_policy_name",
    "rollback_wave",
]

log = logging.getLogger(__name__)

# KV namespace/key of the "the CA baseline must be synced" marker (set before a state change).
SYNC_NAMESPACE: Final = "wave-sync"
SYNC_KEY: Final = "baseline"
TIMER_ACTOR: Final = "wave-timer"
# A tick must finish inside the Functions host's functionTimeout (host.json, 5 minutes); the
# announcements stop this long before it, counted from the tick's start.
FUNCTION_TIMEOUT: Final = timedelta(minutes=5)
TICK_MARGIN: Final = timedelta(seconds=60)


class Action(enum.StrEnum):
    """What a decision does to its wave; the first three change the wave's state."""

    START_REGISTERING = "start-registering"
    MOVE_TO_REPORT_ONLY = "move-to-report-only"
    PROMOTE = "promote"
    HOLD = "hold"
    WAIT = "wait"
    NONE = "none"


_MARK_ATTEMPTS: Final = 5
_TARGETS: Final = {
    Action.START_REGISTERING: WaveState.REGISTERING,
    Action.MOVE_TO_REPORT_ONLY: WaveState.REPORT_ONLY,
    Action.PROMOTE: WaveState.ENFORCED,
}


class Evidence(Protocol):
    """Where gate evidence comes from (``GraphEvidence`` in production)."""

    async def wave_members(self, wave: str) -> frozenset[str]: ...

    async def wave_member_addresses(self, wave: str) -> Mapping[str, str]:
        """The case-folded UPN and mail of each member ``wave_members`` last returned for ``wave``
        -> its id (read with them: no further request), or of the members now when never read."""
        ...

    async def registered_users(self) -> frozenset[str]: ...

    async def report_only_sign_ins(
        self, policy_name: str, *, since: datetime, mfa_details: bool = False
    ) -> list[SignInResult]:
        """Sign-ins since ``since`` with the twin's result; with ``mfa_details`` every interactive
        sign-in too, marked with whether it prompted for MFA (the same one read)."""
        ...


class PolicySync(Protocol):
    """Sync the Conditional Access baseline with the plan and the wave states (audited)."""

    async def __call__(self, *, reason: str, correlation_id: str) -> object: ...


class MembershipStart(Protocol):
    """Start the wave's membership sync (production: plan it and enqueue its ``wave-work`` chunks)."""

    async def __call__(self, wave: str, *, correlation_id: str) -> object: ...


class MembershipResync(Protocol):
    """Re-sync the started waves this tick; the waves whose sync could not start, and why
    (production: ``membership.changed``, which reads only the users Graph reports changed)."""

    async def __call__(self, waves: list[str], *, correlation_id: str) -> dict[str, str]: ...


class GroupEnsurer(Protocol):
    """Find or create the wave's target group; returns its id."""

    async def __call__(self, wave: str, *, correlation_id: str) -> str: ...


@dataclass(slots=True)
class LifecycleDeps:
    """Everything the evaluation needs; each side effect sits behind a small port."""

    plan: RolloutPlan
    stores: AsyncStores
    evidence: Evidence
    sync_policies: PolicySync
    start_membership: MembershipStart
    clock: Callable[[], datetime]
    nudge_mail: NudgeMail | None = None
    # Creates the wave group when missing (the lint refuses a policy naming a group that is not there).
    ensure_group: GroupEnsurer | None = None
    # The every-tick re-sync of started waves; without it, each wave's full sync (start_membership).
    resync_membership: MembershipResync | None = None
    # Announcements before report-only and before enforcement (docs/waves.md, 'Announcements').
    announcer: Announcer | None = None


@dataclass(slots=True)
class WaveDecision:
    """One wave's evaluation: where it is, its gates, and what was (or would be) done."""

    wave: str
    state: WaveState
    since: datetime | None
    action: Action
    detail: str
    gates: list[GateResult]
    members: int
    registered: int
    approved: bool
    applied: bool = False
    new_state: WaveState | None = None

    @property
    def failing(self) -> list[str]:
        return [g.name for g in self.gates if not g.passed]

    def gate(self, name: str) -> GateResult | None:
        return next((g for g in self.gates if g.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "state": self.state.value,
            "since": self.since.isoformat() if self.since else None,
            "members": self.members,
            "registered": self.registered,
            "action": self.action,
            "detail": self.detail,
            "approved": self.approved,
            "applied": self.applied,
            "newState": self.new_state.value if self.new_state else None,
            "gates": [g.to_dict() for g in self.gates],
        }


@dataclass(slots=True)
class EvaluationResult:
    """One evaluation run: a decision per wave, whether the baseline was synced, the nudges sent."""

    decisions: list[WaveDecision]
    dry_run: bool
    policy_synced: bool = False
    nudges: list[NudgeReport] = field(default_factory=list)
    announcements: list[AnnounceReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "policySynced": self.policy_synced,
            "waves": [d.to_dict() for d in self.decisions],
            "nudges": [n.to_dict() for n in self.nudges],
            "announcements": [a.to_dict() for a in self.announcements],
        }


def report_only_policy_name(plan: RolloutPlan) -> str:
    """Display name of the report-only twin of *Require MFA* (the policy dark waves are in)."""
    return plan.policies.name_prefix + POLICY_TITLES["mfa-report-only"]


async def evaluate_waves(
    deps: LifecycleDeps, *, correlation_id: str, dry_run: bool = False, deadline: datetime | None = None
) -> EvaluationResult:
    """Evaluate every wave in plan order and apply each next step (none when ``dry_run``).

    ``deadline``: when the tick must be done (default: its start + ``FUNCTION_TIMEOUT`` -
    ``TICK_MARGIN``); the announcements, sent last, stop there.

    Raises:
        RetryableError: Graph or the state store failed transiently (the next run resumes).
        PermanentError: Graph refused a read, or the CA baseline failed its lint.
    """
    now = deps.clock()
    deadline = deadline if deadline is not None else now + FUNCTION_TIMEOUT - TICK_MARGIN
    statuses = {w.name: await read_wave_state(deps.stores.kv, w.name) for w in deps.plan.waves}
    registered = await deps.evidence.registered_users()
    sign_ins = await _sign_ins(deps, statuses.values())
    tickets = await _tickets(deps, now, dry_run=dry_run)
    known_addresses = await _known_addresses(deps) if tickets is not None else frozenset()
    result = EvaluationResult([], dry_run)
    # Started waves are re-synced first, so a sync refused now (its critical alert) holds the wave now.
    not_synced = {} if dry_run else await _reconcile_membership(deps, statuses, correlation_id=correlation_id)
    previous_enforced = True
    unregistered: dict[str, frozenset[str]] = {}
    to_announce: list[tuple[Wave, WaveState, Snapshot | None]] = []
    for wave in deps.plan.waves:
        status = statuses[wave.name]
        members = await deps.evidence.wave_members(wave.name)
        wants_tickets = wave.gates.max_mfa_tickets_per_100_users is not None
        snapshot, progress = await _announcement_progress(deps, wave, status.state, now, dry_run=dry_run)
        evidence = WaveEvidence(
            members,
            registered,
            sign_ins,
            await open_critical_alerts(deps.stores.kv, wave.name),
            member_addresses=await deps.evidence.wave_member_addresses(wave.name) if wants_tickets else {},
            known_addresses=known_addresses,
            tickets=tickets,
            announcement=progress,
        )
        decision = await _decide(deps, wave, status, evidence, previous_enforced, now)
        if wave.name in not_synced:
            decision.detail += f"; membership sync not started: {not_synced[wave.name]}"
        if not dry_run and decision.action in _TARGETS:
            await _apply(deps, decision, correlation_id=correlation_id, now=now)
        final = decision.new_state if decision.applied and decision.new_state else status.state
        previous_enforced = final is WaveState.ENFORCED
        if final in DARK_PHASES:
            unregistered[wave.name] = evidence.unregistered_members
        to_announce.append((wave, final, snapshot))
        result.decisions.append(decision)
    if not dry_run:
        result.policy_synced = await _sync_if_pending(deps, correlation_id=correlation_id)
        result.nudges = await _nudge(deps, unregistered, now)
        result.announcements = await _announce(
            deps, to_announce, correlation_id=correlation_id, deadline=deadline
        )
    return result


async def _announcement_snapshot(
    deps: LifecycleDeps, wave: Wave, state: WaveState, *, dry_run: bool
) -> Snapshot | None:
    """The wave's progress toward announcing its next move (read for the gate, and reused to send
    it); None when no announcement is due or sent. A dry run (`waves status`) reads it only for the
    gate."""
    stage = stage_for(state)
    if deps.announcer is None or stage is None or not communications_enabled(deps.plan, wave):
        return None
    if dry_run and wave.gates.announced_days_before is None:
        return None
    return await deps.announcer.snapshot(wave, stage)


async def _announcement_progress(
    deps: LifecycleDeps, wave: Wave, state: WaveState, now: datetime, *, dry_run: bool
) -> tuple[Snapshot | None, AnnouncementProgress | None]:
    """The wave's announcement snapshot and the gate's progress from it. A read that fails (Graph,
    the store, or anything unexpected) holds only this wave's ``announced`` gate, naming the error;
    the tick goes on (the CA sync, the nudges, the other waves)."""
    try:
        snapshot = await _announcement_snapshot(deps, wave, state, dry_run=dry_run)
    except WaveGuardError as exc:
        log.warning("announcement progress not read", extra={"wave": wave.name, "error": type(exc).__name__})
        return None, AnnouncementProgress.unreadable(
            str(stage_for(state)), f"{type(exc).__name__}: {exc}"[:300]
        )
    except Exception as exc:
        log.exception(
            "announcement progress not read", extra={"wave": wave.name, "error": type(exc).__name__}
        )
        return None, AnnouncementProgress.unreadable(
            str(stage_for(state)), f"{type(exc).__name__}: {exc}"[:300]
        )
    return snapshot, snapshot.progress(now) if snapshot is not None else None


async def _announce(
    deps: LifecycleDeps,
    waves: list[tuple[Wave, WaveState, Snapshot | None]],
    *,
    correlation_id: str,
    deadline: datetime,
) -> list[AnnounceReport]:
    """Send each wave's due announcement, within one run's time for all of them together
    (``maxSecondsPerRun`` from now, and never past the tick's ``deadline``); a wave whose run fails
    is reported and left to the next tick (its gate holds it meanwhile)."""
    announcer = deps.announcer
    if announcer is None:
        return []
    budget = timedelta(seconds=deps.plan.communications.budget.max_seconds_per_run)
    deadline = min(deadline, deps.clock() + budget)
    reports: list[AnnounceReport] = []
    for wave, state, snapshot in waves:
        stage = stage_for(state)
        if stage is None or not communications_enabled(deps.plan, wave):
            continue
        try:
            reports.append(
                await announcer.run(
                    wave,
                    stage,
                    actor=TIMER_ACTOR,
                    correlation_id=correlation_id,
                    snapshot=snapshot if snapshot is not None and snapshot.stage == stage else None,
                    deadline=deadline,
                )
            )
        except Exception as exc:  # one wave's failure is reported; the tick's other work stands
            log.warning("announcements failed", extra={"wave": wave.name, "error": type(exc).__name__})
            reports.append(
                AnnounceReport(wave.name, stage, False, error=f"{type(exc).__name__}: {exc}"[:300])
            )
    return reports


async def _reconcile_membership(
    deps: LifecycleDeps, statuses: Mapping[str, WaveStatus], *, correlation_id: str
) -> dict[str, str]:
    """Re-sync each wave started before this tick; the waves whose sync could not start, and why.

    Every tick does this, so a department, country or selector-group change that no HR event
    announced still lands; a wave that starts registering in this tick is synced by its transition.
    """
    started = [wave for wave, status in statuses.items() if status.state is not WaveState.PLANNED]
    if deps.resync_membership is not None:
        if not started:
            return {}
        try:
            return await deps.resync_membership(started, correlation_id=correlation_id)
        except WaveGuardError as exc:
            log.warning("membership re-sync failed", extra={"error": type(exc).__name__})
            return dict.fromkeys(started, str(exc))
    not_synced: dict[str, str] = {}
    for wave in started:
        problem = await _try_membership(deps, wave, correlation_id=correlation_id)
        if problem is not None:
            not_synced[wave] = problem
    return not_synced


async def rollback_wave(
    deps: LifecycleDeps,
    wave: str,
    *,
    actor: str,
    correlation_id: str,
    reason: str,
    accept_no_mfa: bool = False,
) -> WaveStatus:
    """Take an enforced wave back to report-only and sync the CA baseline; clears its approval.

    ``accept_no_mfa``: roll back even though users of the wave were moved off per-user MFA (an
    emergency: CA itself is locking people out); they are left with no MFA until ``permfa
    rollback`` and the audit entry says so.

    Raises:
        NotFoundError: the plan has no such wave.
        InvalidTransitionError: the wave is not enforced.
        SafetyViolationError: users were moved off per-user MFA and ``accept_no_mfa`` is not set.
        RetryableError / PermanentError: the store or Graph failed (the sync marker stays set).
    """
    _plan_wave(deps.plan, wave)
    without_mfa = await _refuse_while_off_per_user_mfa(deps, wave, accept=accept_no_mfa)
    current = await read_wave_state(deps.stores.kv, wave)
    now = deps.clock()
    await _mark_sync_pending(deps, reason=f"rollback of {wave}")
    status = await transition_wave(
        deps.stores.kv, wave, WaveState.REPORT_ONLY, now=now, expected=WaveState.ENFORCED
    )
    await clear_approval(deps.stores.kv, wave)
    details = {"leftWithoutMfa": without_mfa} if without_mfa else {}
    await _audit(deps, actor, wave, current.state, WaveState.REPORT_ONLY, reason, correlation_id, details)
    await _sync_if_pending(deps, correlation_id=correlation_id)
    return status


async def _refuse_while_off_per_user_mfa(deps: LifecycleDeps, wave: str, *, accept: bool) -> int:
    """A wave whose users WaveGuard moved off per-user MFA must not leave enforcement first: they
    would have no MFA at all. Their per-user MFA is put back first (``permfa rollback``).

    Raises:
        SafetyViolationError: the ledger holds users moved off per-user MFA and not put back.
    """
    from shared.rollout.permfa.ledger import latest_entries

    moved = [
        e
        for e in (await latest_entries(deps.stores.kv, wave)).values()
        if e.outcome in ("disabled", "pending")
    ]
    if moved and not accept:
        raise SafetyViolationError(
            f"wave {wave!r}: {len(moved)} user(s) were moved off per-user MFA because Conditional Access "
            f"enforces the wave; rolling it back now would leave them without MFA. Put their per-user "
            f"MFA back first (`waveguard permfa rollback {wave}`), then roll the wave back; in an "
            "emergency, `waves rollback --accept-no-mfa` rolls back now and leaves them without MFA.",
            rule="permfa-before-rollback",
            wave=wave,
            users=len(moved),
        )
    return len(moved)


def _plan_wave(plan: RolloutPlan, wave: str) -> Wave:
    try:
        return plan.wave(wave)
    except KeyError:
        names = ", ".join(w.name for w in plan.waves)
        raise NotFoundError(f"wave {wave!r} is not in the plan (waves: {names})", field="wave") from None


async def _sign_ins(deps: LifecycleDeps, statuses: Sequence[WaveStatus] | Any) -> list[SignInResult]:
    starts = [s.since for s in statuses if s.state in DARK_PHASES and s.since is not None]
    if not starts:
        return []
    prompts = any(w.gates.max_mfa_prompts_per_user_per_day is not None for w in deps.plan.waves)
    return await deps.evidence.report_only_sign_ins(
        report_only_policy_name(deps.plan), since=min(starts), mfa_details=prompts
    )


async def _tickets(deps: LifecycleDeps, now: datetime, *, dry_run: bool) -> TicketRead | None:
    """The kept helpdesk tickets of the longest ticket window any wave asks for (one read of the
    window's days); None when no helpdesk source is configured. Unless ``dry_run``, the days past
    the tickets' retention are deleted first, a bounded step per tick (never failing the tick)."""
    windows = [
        w.gates.ticket_window_days
        for w in deps.plan.waves
        if w.gates.max_mfa_tickets_per_100_users is not None
    ]
    if not deps.plan.helpdesk.enabled:
        return None
    if not dry_run:
        try:
            await prune_tickets(deps.stores.kv, now=now)
        except WaveGuardError as exc:
            log.warning("old helpdesk tickets not pruned this tick", extra={"error": type(exc).__name__})
    if not windows:
        return TicketRead()
    return await read_tickets(deps.stores.kv, since=now - timedelta(days=max(windows)), until=now)


async def _known_addresses(deps: LifecycleDeps) -> frozenset[str]:
    """Every wave's members' addresses as last read (a ticket matching none is unattributed)."""
    if all(w.gates.max_mfa_tickets_per_100_users is None for w in deps.plan.waves):
        return frozenset()
    known: set[str] = set()
    for wave in deps.plan.waves:
        known.update(await deps.evidence.wave_member_addresses(wave.name))
    return frozenset(known)


async def _decide(
    deps: LifecycleDeps,
    wave: Wave,
    status: WaveStatus,
    evidence: WaveEvidence,
    previous_enforced: bool,
    now: datetime,
) -> WaveDecision:
    gates = evaluate_gates(wave.gates, status, evidence, now=now)
    approved = await approval_of(deps.stores.kv, wave.name) is not None
    decision = WaveDecision(
        wave.name,
        status.state,
        status.since,
        Action.NONE,
        "",
        gates,
        len(evidence.members),
        len(evidence.registered_members),
        approved,
    )
    failing = ", ".join(decision.failing)
    if status.state is WaveState.PLANNED:
        decision.action, decision.detail = (
            (
                Action.START_REGISTERING,
                "previous wave enforced" if wave is not deps.plan.waves[0] else "first wave",
            )
            if previous_enforced
            else (Action.WAIT, "waiting for the previous wave to be enforced")
        )
    elif status.state is WaveState.REGISTERING:
        # registration, and the report-only announcement's notice when the plan asks for it
        needed = [g for g in (gates[0], decision.gate(ANNOUNCED_GATE)) if g is not None]
        blocking = [g for g in needed if not g.passed]
        decision.action, decision.detail = (
            (Action.HOLD, "failing: " + "; ".join(f"{g.name} ({g.detail})" for g in blocking))
            if blocking
            else (Action.MOVE_TO_REPORT_ONLY, "; ".join(g.detail for g in needed))
        )
    elif status.state is WaveState.REPORT_ONLY:
        if decision.failing:
            decision.action, decision.detail = Action.HOLD, f"failing: {failing}"
        elif wave.promotion == "auto" or approved:
            decision.action = Action.PROMOTE
            decision.detail = "every gate passed" + ("" if wave.promotion == "auto" else "; approved")
        else:
            decision.action = Action.HOLD
            decision.detail = f"every gate passed; waiting for `waveguard waves approve {wave.name}`"
    else:
        decision.detail = "enforced"
    return decision


async def _apply(deps: LifecycleDeps, decision: WaveDecision, *, correlation_id: str, now: datetime) -> None:
    target = _TARGETS[decision.action]
    if target is WaveState.REGISTERING and deps.ensure_group is not None:
        try:
            await deps.ensure_group(decision.wave, correlation_id=correlation_id)
        except WaveGuardError as exc:
            decision.action, decision.detail = Action.HOLD, f"the wave group could not be made ready: {exc}"
            return
    if (
        decision.action != Action.MOVE_TO_REPORT_ONLY
    ):  # registering already puts the group in the report-only twin
        await _mark_sync_pending(deps, reason=f"{decision.wave}: {decision.state.value} -> {target.value}")
    try:
        await transition_wave(deps.stores.kv, decision.wave, target, now=now, expected=decision.state)
    except (ConcurrencyError, InvalidTransitionError) as exc:
        decision.action, decision.detail = (
            Action.HOLD,
            f"changed by another run meanwhile ({type(exc).__name__})",
        )
        return
    decision.applied, decision.new_state = True, target
    details = {"gates": [g.to_dict() for g in decision.gates], "approved": decision.approved}
    await _audit(
        deps, TIMER_ACTOR, decision.wave, decision.state, target, decision.detail, correlation_id, details
    )
    if target is WaveState.ENFORCED:
        await clear_approval(deps.stores.kv, decision.wave)
    if target is WaveState.REGISTERING:
        await _start_membership(deps, decision, correlation_id=correlation_id)


async def _start_membership(deps: LifecycleDeps, decision: WaveDecision, *, correlation_id: str) -> None:
    # The state change stands: a membership sync that cannot start (blast radius, a missing
    # selector group) is reported on the decision and in the log, not by undoing the transition.
    problem = await _try_membership(deps, decision.wave, correlation_id=correlation_id)
    if problem is not None:
        decision.detail += f"; membership sync not started: {problem}"


async def _try_membership(deps: LifecycleDeps, wave: str, *, correlation_id: str) -> str | None:
    """Start the wave's membership sync; None when started, else why not (logged)."""
    try:
        await deps.start_membership(wave, correlation_id=correlation_id)
    except WaveGuardError as exc:
        log.warning("membership sync not started", extra={"wave": wave, "error": type(exc).__name__})
        return str(exc)
    return None


async def _audit(
    deps: LifecycleDeps,
    actor: str,
    wave: str,
    before: WaveState,
    after: WaveState,
    reason: str,
    correlation_id: str,
    details: dict[str, Any],
) -> None:
    await deps.stores.audit.append(
        AuditEntry(
            actor=actor,
            action="wave.transition",
            target=wave,
            reason=reason,
            correlation_id=correlation_id,
            details={"from": before.value, "to": after.value, **details},
        )
    )
    log.info("wave transition", extra={"wave": wave, "from": before.value, "to": after.value})


async def _mark_sync_pending(deps: LifecycleDeps, *, reason: str) -> None:
    """Ask the next tick to sync the CA policies, keeping every reason given since the last sync
    (a conditional write: two transitions marking at once both keep theirs)."""
    for attempt in range(_MARK_ATTEMPTS):
        stored = await deps.stores.kv.get(SYNC_NAMESPACE, SYNC_KEY)
        value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        merged = f"{value['reason']}; {reason}" if value.get("pending") and value.get("reason") else reason
        conditional = attempt < _MARK_ATTEMPTS - 1  # at last, pending matters more than every reason
        etag = stored.etag if stored is not None and conditional else None
        try:
            await deps.stores.kv.put(
                SYNC_NAMESPACE,
                SYNC_KEY,
                {"pending": True, "reason": merged[-2000:]},
                if_match=etag,
                if_absent=stored is None and conditional,
            )
            return
        except ConcurrencyError:
            continue


def _soak_not_due(marker: Mapping[str, Any], now: datetime) -> bool:
    """The marker was set only by a running policy soak (``soakDue`` in the future)."""
    from shared.rollout.policies.baseline import SOAK_REASON

    if marker.get("reason") != SOAK_REASON or not marker.get("soakDue"):
        return False
    try:
        return datetime.fromisoformat(str(marker["soakDue"])) > now
    except ValueError:
        return False


async def _sync_if_pending(deps: LifecycleDeps, *, correlation_id: str) -> bool:
    stored = await deps.stores.kv.get(SYNC_NAMESPACE, SYNC_KEY)
    if stored is None or not isinstance(stored.value, dict) or not stored.value.get("pending"):
        return False
    if _soak_not_due(stored.value, deps.clock()):
        return False  # only a block/risk pair's soak asks for it, and it is not due: nothing to sync
    reason = str(stored.value.get("reason", "wave lifecycle"))
    await deps.sync_policies(reason=reason, correlation_id=correlation_id)
    try:  # only clear the marker this sync covered: a newer one means another change to sync
        await deps.stores.kv.put(
            SYNC_NAMESPACE, SYNC_KEY, {"pending": False, "reason": reason}, if_match=stored.etag
        )
    except ConcurrencyError:
        log.info("baseline sync marker changed during the sync; the next run syncs again")
    return True


async def _nudge(
    deps: LifecycleDeps, unregistered: dict[str, frozenset[str]], now: datetime
) -> list[NudgeReport]:
    if deps.nudge_mail is None:
        return []
    reports = []
    for name, users in unregistered.items():
        reports.append(
            await send_nudges(
                deps.nudge_mail,
                idempotency=deps.stores.idempotency,
                kv=deps.stores.kv,
                wave=deps.plan.wave(name),
                unregistered=users,
                now=now,
            )
        )
    return reports
