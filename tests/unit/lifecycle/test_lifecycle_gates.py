"""Each gate says passed or failing with the measured value next to its threshold."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.config.waves import Gates
from shared.errors import InvalidPayloadError
from shared.rollout.lifecycle import ALERTS_OPEN_NAMESPACE, SignInResult, WaveEvidence, open_critical_alerts
from shared.rollout.lifecycle.gates import alert_gate, registration_gate, report_only_gate, soak_gate
from shared.rollout.wave_state import WaveState, WaveStatus
from shared.state import StateStores
from tests.aio import aio
from tests.unit.lifecycle.fakes import START

GATES = Gates(
    min_registration_rate=0.9, max_report_only_failure_rate=0.05, min_soak_days=3, min_report_only_sign_ins=20
)
MEMBERS = frozenset(f"u{i}" for i in range(10))


def _sign_ins(
    ok: int, failed: int, *, user: str = "u1", result: str = "reportOnlyFailure"
) -> list[SignInResult]:
    return [SignInResult(user, START, "reportOnlySuccess")] * ok + [
        SignInResult(user, START, result)
    ] * failed


def test_registration_rate_of_members_only() -> None:
    # GIVEN 8 of 10 members registered, and registered people outside the wave
    evidence = WaveEvidence(MEMBERS, frozenset({f"u{i}" for i in range(8)} | {"outsider1", "outsider2"}))
    gate = registration_gate(GATES, evidence)
    assert (gate.passed, gate.measured, gate.threshold) == (False, 0.8, 0.9)
    assert gate.detail == "8/10 members registered"
    # WHEN a ninth registers / THEN it passes
    assert registration_gate(GATES, WaveEvidence(MEMBERS, frozenset({f"u{i}" for i in range(9)}))).passed


def test_an_empty_wave_never_passes_registration() -> None:
    gate = registration_gate(GATES, WaveEvidence(frozenset(), frozenset({"u1"})))
    assert not gate.passed
    assert "no members" in gate.detail


def test_report_only_impact_needs_evidence_then_compares_the_failure_rate() -> None:
    too_few = report_only_gate(GATES, WaveEvidence(MEMBERS, frozenset(), _sign_ins(10, 0)), since=START)
    assert not too_few.passed
    assert too_few.measured is None
    assert "10 report-only sign-ins, 20 needed" in too_few.detail
    clean = report_only_gate(GATES, WaveEvidence(MEMBERS, frozenset(), _sign_ins(39, 1)), since=START)
    assert (clean.passed, clean.measured) == (True, 0.025)
    interrupted = _sign_ins(18, 2, result="reportOnlyInterrupted")
    bad = report_only_gate(GATES, WaveEvidence(MEMBERS, frozenset(), interrupted), since=START)
    assert (bad.passed, bad.measured, bad.detail) == (
        False,
        0.1,
        "2/20 report-only sign-ins would have failed",
    )


def test_sign_ins_of_non_members_or_before_the_soak_do_not_count() -> None:
    outside = _sign_ins(0, 30, user="stranger")
    early = [SignInResult("u1", START - timedelta(days=1), "reportOnlyFailure")] * 30
    gate = report_only_gate(
        GATES, WaveEvidence(MEMBERS, frozenset(), outside + early + _sign_ins(20, 0)), since=START
    )
    assert (gate.passed, gate.measured) == (True, 0.0)


def test_soak_counts_days_in_report_only() -> None:
    status = WaveStatus("pilot", WaveState.REPORT_ONLY, START)
    assert not soak_gate(GATES, status, now=START + timedelta(days=2)).passed
    gate = soak_gate(GATES, status, now=START + timedelta(days=3))
    assert (gate.passed, gate.measured, gate.threshold) == (True, 3.0, 3)
    assert not soak_gate(
        GATES, WaveStatus("pilot", WaveState.REGISTERING, START), now=START + timedelta(days=9)
    ).passed


def test_open_critical_alerts_block_and_others_do_not(stores: StateStores) -> None:
    stores.kv.put(
        ALERTS_OPEN_NAMESPACE,
        "pilot",
        {
            "open": [
                {"id": "a1", "severity": "warning", "summary": "slow"},
                {"id": "a2", "severity": "critical", "summary": "x"},
            ]
        },
    )
    open_ids = asyncio.run(open_critical_alerts(aio(stores.kv), "pilot"))
    assert open_ids == ["a2"]
    gate = alert_gate(GATES, WaveEvidence(MEMBERS, frozenset(), open_critical=open_ids))
    assert not gate.passed
    assert gate.detail == "open critical alerts: a2"
    assert alert_gate(GATES, WaveEvidence(MEMBERS, frozenset())).passed
    assert asyncio.run(open_critical_alerts(aio(stores.kv), "finance-hr")) == []


def test_a_malformed_alert_record_names_its_field(stores: StateStores) -> None:
    stores.kv.put(ALERTS_OPEN_NAMESPACE, "pilot", {"open": "yes"})
    with pytest.raises(InvalidPayloadError) as info:
        asyncio.run(open_critical_alerts(aio(stores.kv), "pilot"))
    assert "alerts-open/pilot.open" in str(info.value.errors)
