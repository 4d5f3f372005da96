"""Per-user MFA: see it (each user's state, wave by wave, against Conditional Access coverage)."""

from __future__ import annotations

from shared.rollout.permfa.report import (
    PERMFA_NAMESPACE,
    REPORT_KEY,
    PerUserMfaReport,
    WaveMfa,
    build_report,
    last_report,
    summary_line,
)
from shared.rollout.permfa.states import KNOWN_STATES, PerUserState, StateRead, read_states

__all__ = [
    "KNOWN_STATES",
    "PERMFA_NAMESPACE",
    "REPORT_KEY",
    "PerUserMfaReport",
    "PerUserState",
    "StateRead",
    "WaveMfa",
    "build_report",
    "last_report",
    "read_states",
    "summary_line",
]
