"""The wave lifecycle: states, promotion gates, the timer's evaluation, nudges, announcements and
status rows."""

from __future__ import annotations

from shared.rollout.lifecycle.announcements import (
    ANNOUNCEMENTS_NAMESPACE,
    Announcer,
    AnnounceReport,
    GraphAnnouncementMail,
)
from shared.rollout.lifecycle.approvals import (
    APPROVALS_NAMESPACE,
    approval_of,
    clear_approval,
    record_approval,
)
from shared.rollout.lifecycle.evaluate import (
    SYNC_NAMESPACE,
    EvaluationResult,
    Evidence,
    LifecycleDeps,
    WaveDecision,
    evaluate_waves,
    report_only_policy_name,
    rollback_wave,
)
from shared.rollout.lifecycle.gates import (
    ALERTS_OPEN_NAMESPACE,
    GateResult,
    SignInResult,
    WaveEvidence,
    evaluate_gates,
    open_critical_alerts,
)
from shared.rollout.lifecycle.nudges import (
    NUDGES_NAMESPACE,
    Contact,
    GraphNudgeMail,
    NudgeMail,
    NudgeReport,
    nudge_period,
    send_nudges,
)
from shared.rollout.lifecycle.states import (
    TRANSITIONS,
    InvalidTransitionError,
    check_transition,
    transition_wave,
)
from shared.rollout.lifecycle.status import WaveRow, collect_status, rows_from
from shared.rollout.lifecycle.timer import TIMER_ALERT_SOURCE, run_timer_tick

__all__ = [
    "ALERTS_OPEN_NAMESPACE",
    "ANNOUNCEMENTS_NAMESPACE",
    "APPROVALS_NAMESPACE",
    "NUDGES_NAMESPACE",
    "SYNC_NAMESPACE",
    "TIMER_ALERT_SOURCE",
    "TRANSITIONS",
    "AnnounceReport",
    "Announcer",
    "Contact",
    "EvaluationResult",
    "Evidence",
    "GateResult",
    "GraphAnnouncementMail",
    "GraphNudgeMail",
    "InvalidTransitionError",
    "LifecycleDeps",
    "NudgeMail",
    "NudgeReport",
    "SignInResult",
    "WaveDecision",
    "WaveEvidence",
    "WaveRow",
    "approval_of",
    "check_transition",
    "clear_approval",
    "collect_status",
    "evaluate_gates",
    "evaluate_waves",
    "nudge_period",
    "open_critical_alerts",
    "record_approval",
    "report_only_policy_name",
    "rollback_wave",
    "rows_from",
    "run_timer_tick",
    "send_nudges",
    "transition_wave",
]
