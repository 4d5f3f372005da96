"""The data behind `waveguard waves status`: one row per wave, from a dry-run evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.rollout.lifecycle.evaluate import EvaluationResult, LifecycleDeps, WaveDecision, evaluate_waves
from shared.rollout.lifecycle.gates import GateResult

__all__ = ["WaveRow", "collect_status", "row_from", "rows_from"]


@dataclass(frozen=True, slots=True)
class WaveRow:
    """One wave as the status table shows it."""

    wave: str
    state: str
    since: str | None
    members: int
    registered: int
    registered_rate: float | None
    report_only_failure_rate: float | None
    report_only_sign_ins: str
    gates_passed: list[str]
    gates_failing: list[str]
    next_action: str
    detail: str
    # The user-experience gates, when the plan sets them (None: not evaluated).
    mfa_tickets: GateResult | None = None
    mfa_prompts: GateResult | None = None
    # The announcement notice gate, when the plan sets it (None: not evaluated).
    announced: GateResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "state": self.state,
            "since": self.since,
            "members": self.members,
            "registered": self.registered,
            "registeredRate": self.registered_rate,
            "reportOnlyFailureRate": self.report_only_failure_rate,
            "reportOnlySignIns": self.report_only_sign_ins,
            "gatesPassed": self.gates_passed,
            "gatesFailing": self.gates_failing,
            "nextAction": self.next_action,
            "detail": self.detail,
            "mfaTickets": self.mfa_tickets.to_dict() if self.mfa_tickets else None,
            "mfaPrompts": self.mfa_prompts.to_dict() if self.mfa_prompts else None,
            "announced": self.announced.to_dict() if self.announced else None,
        }


def row_from(decision: WaveDecision) -> WaveRow:
    """The status row of one evaluated wave."""
    impact = decision.gate("report-only-impact")
    rate = decision.registered / decision.members if decision.members else None
    failure = impact.measured if impact is not None and isinstance(impact.measured, float) else None
    return WaveRow(
        wave=decision.wave,
        state=decision.state.value,
        since=decision.since.isoformat() if decision.since else None,
        members=decision.members,
        registered=decision.registered,
        registered_rate=rate,
        report_only_failure_rate=failure,
        report_only_sign_ins=impact.detail if impact else "",
        gates_passed=[g.name for g in decision.gates if g.passed],
        gates_failing=decision.failing,
        next_action=decision.action,
        detail=decision.detail,
        mfa_tickets=decision.gate("mfa-tickets"),
        mfa_prompts=decision.gate("mfa-prompts"),
        announced=decision.gate("announced"),
    )


def rows_from(result: EvaluationResult) -> list[WaveRow]:
    """One row per wave in plan order."""
    return [row_from(d) for d in result.decisions]


async def collect_status(deps: LifecycleDeps, *, correlation_id: str) -> list[WaveRow]:
    """Evaluate every wave without changing anything and return the table's rows.

    Raises:
        RetryableError: Graph or the state store failed transiently.
        PermanentError: Graph refused a read.
    """
    return rows_from(await evaluate_waves(deps, correlation_id=correlation_id, dry_run=True))
