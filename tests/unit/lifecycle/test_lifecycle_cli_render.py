"""The status table's progress bars and rows read the same whatever the numbers."""

from __future__ import annotations

from dataclasses import replace

from cli.waves import progress_bar, render_table
from shared.rollout.lifecycle import GateResult, WaveRow


def test_progress_bar_fills_with_the_rate_and_shows_unknown() -> None:
    assert progress_bar(0.0, width=10) == "[----------]   0%"
    assert progress_bar(0.58, width=10) == "[######----]  58%"
    assert progress_bar(1.0, width=10) == "[##########] 100%"
    assert progress_bar(None, width=10) == "[----------]    -"


def test_the_table_names_state_gates_and_next_action() -> None:
    row = WaveRow(
        wave="pilot",
        state="report-only",
        since="2026-03-02T09:00:00+00:00",
        members=31,
        registered=30,
        registered_rate=30 / 31,
        report_only_failure_rate=0.125,
        report_only_sign_ins="1/8 would have failed",
        gates_passed=["registration", "soak"],
        gates_failing=["report-only-impact"],
        next_action="hold",
        detail="failing: report-only-impact",
    )
    table = render_table([row])
    assert "pilot  [report-only since 2026-03-02 09:00]" in table
    assert "registered   [###################-]  97%  (30/31)" in table
    assert "report-only  failure rate 12.5%  (1/8 would have failed)" in table
    assert "gates        passed: registration, soak; failing: report-only-impact" in table
    assert "next         hold: failing: report-only-impact" in table


def test_the_table_shows_the_user_experience_gates_only_when_set() -> None:
    base = WaveRow(
        wave="pilot",
        state="report-only",
        since=None,
        members=31,
        registered=31,
        registered_rate=1.0,
        report_only_failure_rate=0.0,
        report_only_sign_ins="0/50 would have failed",
        gates_passed=[],
        gates_failing=["mfa-tickets"],
        next_action="hold",
        detail="failing: mfa-tickets",
    )
    assert "mfa tickets" not in render_table([base])
    tickets = GateResult("mfa-tickets", False, 6.45, 5.0, "2 MFA tickets from 31 members in the last 7 days")
    prompts = GateResult("mfa-prompts", False, None, 3.0, "no interactive sign-ins by members")
    table = render_table([replace(base, mfa_tickets=tickets, mfa_prompts=prompts)])
    assert (
        "  mfa tickets  6.45 per 100 members, at most 5  (2 MFA tickets from 31 members in the last 7 days)"
        in table
    )
    assert "  mfa prompts  - per user-day, at most 3  (no interactive sign-ins by members)" in table
    assert replace(base, mfa_tickets=tickets).to_dict()["mfaTickets"]["measured"] == 6.45
