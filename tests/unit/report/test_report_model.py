"""The report's content: timelines from the audit log and the snapshots, charts from the snapshots
and the saved per-user MFA report, bad options refused naming the field."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.common import EXIT_USAGE
from cli.report import run_report
from shared.errors import InvalidPayloadError
from shared.report import (
    ReportOptions,
    build_rollout_report,
    options_from_query,
    parse_days,
    render_html,
    report_options,
    stale_after_for,
)
from shared.report.model import DEFAULT_STALE_AFTER
from shared.report.snapshots import snapshot_namespace
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import AuditEntry, StateStores, build_memory_state
from tests.report_seed import HOSTILE, load_report_plan, seed_history

NOW = datetime(2026, 3, 20, 14, 30, tzinfo=UTC)


@pytest.fixture
def stores() -> StateStores:
    return build_memory_state(clock=lambda: NOW)


async def test_each_wave_has_its_timeline_figures_alerts_and_per_user_counts(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    seeded = await seed_history(stores.aio, plan, now=NOW)
    report = await build_rollout_report(plan, stores.aio, now=NOW)
    assert [w.name for w in report.waves] == [w.name for w in plan.waves]
    pilot, second, *rest = report.waves
    # THEN the pilot's timeline: three audited transitions and the approval, oldest first
    assert [(e.kind, e.previous, e.state, e.source) for e in pilot.events] == [
        ("transition", "planned", "registering", "audit"),
        ("transition", "registering", "report-only", "audit"),
        ("approval", None, "report-only", "audit"),
        ("transition", "report-only", "enforced", "audit"),
    ]
    assert pilot.events[2].actor == "cli:alice"
    assert (pilot.state, pilot.description) == ("enforced", HOSTILE)
    charts = {c.key: c for c in pilot.charts}
    assert list(charts) == ["state-timeline", "registration", "report-only-failure-rate", "per-user-mfa"]
    # AND the state steps up planned -> registering -> report-only -> enforced, up to now
    timeline = charts["state-timeline"]
    assert timeline.lines[0].values == (0, 0, 1, 1, 2, 2, 3, 3)
    assert timeline.labels[-1] == NOW.isoformat()
    # AND registration is drawn day by day with the day the timer missed left empty, against the gate
    registration = charts["registration"]
    data, gate = registration.lines
    assert registration.labels[0] == (NOW - timedelta(days=18)).date().isoformat()
    assert None in data.values
    assert data.values[-1] == 1.0
    assert (gate.role, set(gate.values)) == ("threshold", {0.95, None})
    # (the gate is each day's own: none on the day without a snapshot)
    assert [v is None for v in gate.values] == [v is None for v in data.values]
    assert charts["report-only-failure-rate"].has_data
    # AND the per-user MFA counts of the saved report, by state and by verdict
    per_user = charts["per-user-mfa"]
    assert dict(zip(per_user.labels, per_user.lines[0].values, strict=True))["ready to move off"] == 7
    # AND the second wave: started from the audit log, its open critical alert, no failure rate yet
    assert [(e.previous, e.state) for e in second.events] == [("planned", "registering")]
    assert [a.severity for a in second.open_alerts] == ["critical"]
    failure = next(c for c in second.charts if c.key == "report-only-failure-rate")
    assert not failure.has_data
    assert "50 needed as evidence" in failure.empty
    # AND the waves not started: a flat planned line, nothing else to draw, each saying why
    for wave in rest:
        assert wave.state == "planned"
        assert wave.events == ()
        flat, *others = wave.charts
        assert set(flat.lines[0].values) == {0}
        assert all(not c.has_data and c.empty for c in others)
    # AND the whole report is JSON
    assert json.loads(json.dumps(report.to_dict()))["waves"][0]["wave"] == seeded.pilot


async def test_transitions_older_than_the_audit_entries_read_come_from_the_snapshots(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    await seed_history(stores.aio, plan, now=NOW)
    # GIVEN a wave whose transition has no audit entry in the window (the log was busier than the
    # entries read), only its record and the snapshots that saw it
    fresh = build_memory_state(clock=lambda: NOW)
    for wave in plan.waves[:2]:
        namespace = snapshot_namespace(wave.name)
        for row in await stores.aio.kv.values(namespace):
            await fresh.aio.kv.put(namespace, row["day"], row)
        status = await stores.aio.kv.get("waves", wave.name)
        assert status is not None
        await fresh.aio.kv.put("waves", wave.name, status.value)
    report = await build_rollout_report(plan, fresh.aio, now=NOW)
    # THEN each state the snapshots saw begin is on the timeline once, marked as read from them
    assert [(e.state, e.source) for e in report.waves[0].events] == [
        ("registering", "snapshot"),
        ("report-only", "snapshot"),
        ("enforced", "snapshot"),
    ]
    assert [e.actor for e in report.waves[0].events] == ["", "", ""]
    # AND the timeline chart starts at the first change (what came before it is not known)
    assert report.waves[0].charts[0].lines[0].values[0] == 1


async def test_a_wave_record_newer_than_every_snapshot_is_on_the_timeline(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    wave = plan.waves[2].name
    await write_wave_state(stores.aio.kv, wave, WaveState.REGISTERING, NOW - timedelta(hours=1))
    report = await build_rollout_report(plan, stores.aio, now=NOW, options=ReportOptions(wave=wave))
    assert [w.name for w in report.waves] == [wave]
    assert [(e.state, e.source) for e in report.waves[0].events] == [("registering", "state")]


async def test_counts_the_saved_per_user_report_gains_are_shown_under_their_own_names(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    wave = plan.waves[0].name
    saved = {
        "at": NOW.isoformat(),
        "waves": [
            {
                "wave": wave,
                "members": 10,
                "caEnforced": True,
                "states": {"disabled": 8, "enabled": 2},
                "readyToMove": 2,
                "migratedOff": 5,
                "migration": {"failed": 1, "restored": 0},
                "note": "text is not a count",
                "flag": True,
            }
        ],
    }
    await stores.aio.kv.put(PERMFA_NAMESPACE, REPORT_KEY, saved)
    report = await build_rollout_report(plan, stores.aio, now=NOW, options=ReportOptions(wave=wave))
    chart = next(c for c in report.waves[0].charts if c.key == "per-user-mfa")
    assert dict(zip(chart.labels, chart.lines[0].values, strict=True)) == {
        "per-user MFA off": 8,
        "per-user MFA enabled": 2,
        "ready to move off": 2,
        "migrated off": 5,
        "migration: failed": 1,
        "migration: restored": 0,
    }
    assert "10 members; CA enforces MFA" in chart.caption


async def test_no_saved_per_user_report_says_how_to_make_one(tmp_path: Path, stores: StateStores) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    report = await build_rollout_report(plan, stores.aio, now=NOW)
    chart = next(c for c in report.waves[0].charts if c.key == "per-user-mfa")
    assert not chart.has_data
    assert "waveguard permfa report" in chart.empty


def test_bad_options_name_every_bad_field(tmp_path: Path) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    with pytest.raises(InvalidPayloadError) as caught:
        report_options(plan, wave="nope", days=0, format="pdf")
    assert [e["field"] for e in caught.value.errors] == ["wave", "days", "format"]
    assert "unknown wave 'nope' (waves: t-pilot" in caught.value.message
    assert report_options(plan, wave="t-pilot", days=366, format="json") == ReportOptions(
        "t-pilot", 366, "json"
    )


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"wave": "x"}, ["wave"]),
        ({"days": "ninety"}, ["days"]),
        ({"days": "-3"}, ["days"]),
        ({"days": "367"}, ["days"]),
        ({"format": "xml"}, ["format"]),
        ({"colour": "red", "days": "0"}, ["colour", "days"]),
    ],
)
def test_the_query_is_checked_parameter_by_parameter(
    tmp_path: Path, query: dict[str, str], fields: list[str]
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    with pytest.raises(InvalidPayloadError) as caught:
        options_from_query(plan, query)
    assert [e["field"] for e in caught.value.errors] == fields


def test_the_function_key_parameter_is_the_hosts_not_an_unknown_one(tmp_path: Path) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    assert options_from_query(plan, {"code": "k", "days": "30"}) == ReportOptions(None, 30, "html")
    assert options_from_query(plan, {}) == ReportOptions()


async def test_a_busy_audit_log_never_crowds_the_transitions_and_approvals_out(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    seeded = await seed_history(stores.aio, plan, now=NOW)
    # GIVEN a per-user MFA migration of a 10,000-user wave yesterday (one entry per 20 users) and an
    # onboarding burst today: more entries than one audit listing returns, all newer than the pilot's
    for n in range(600):
        at = NOW - timedelta(hours=20, seconds=n)
        await stores.aio.audit.append(
            AuditEntry("cli:bob", "permfa.migrate", f"wave:{seeded.second}", "20 disabled", "c", {}, at=at)
        )
    for n in range(600):
        at = NOW - timedelta(hours=10, seconds=n)
        await stores.aio.audit.append(
            AuditEntry("hr-worker", "onboarding.tap", f"user{n}", "hire", "c", {}, at=at)
        )
    assert len(await stores.aio.audit.list(since=NOW - timedelta(days=1), limit=1000)) == 1000
    for options in (ReportOptions(days=30), ReportOptions(wave=seeded.pilot, days=30)):
        report = await build_rollout_report(plan, stores.aio, now=NOW, options=options)
        # THEN the pilot's transitions and approval are still the audit log's, with who and why
        assert [(e.kind, e.state, e.source) for e in report.waves[0].events] == [
            ("transition", "registering", "audit"),
            ("transition", "report-only", "audit"),
            ("approval", "report-only", "audit"),
            ("transition", "enforced", "audit"),
        ]
        assert report.notes == ()


async def test_each_day_is_drawn_against_its_own_gate(tmp_path: Path, stores: StateStores) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    seeded = await seed_history(stores.aio, plan, now=NOW)
    # GIVEN the plan's gates were lower until five days ago (each row holds the gate of its day)
    namespace = snapshot_namespace(seeded.pilot)
    for key, row in await stores.aio.kv.items(namespace, stop=(NOW - timedelta(days=5)).date().isoformat()):
        await stores.aio.kv.put(
            namespace, key, {**row, "registrationThreshold": 0.9, "reportOnlyThreshold": 0.05}
        )
    report = await build_rollout_report(plan, stores.aio, now=NOW, options=ReportOptions(wave=seeded.pilot))
    charts = {c.key: c for c in report.waves[0].charts}
    # THEN each gate line steps on the day the plan changed, named by today's value
    for key, before, now in (("registration", 0.9, 0.95), ("report-only-failure-rate", 0.05, 0.02)):
        chart = charts[key]
        gate = chart.lines[1]
        by_day = dict(zip(chart.labels, gate.values, strict=True))
        assert by_day[(NOW - timedelta(days=6)).date().isoformat()] == before
        assert by_day[NOW.date().isoformat()] == now
        assert gate.name == f"gate (now {now:.0%})"


async def test_figures_older_than_two_timer_periods_are_flagged_stale(
    tmp_path: Path, stores: StateStores
) -> None:
    plan = load_report_plan(tmp_path / "plan.yaml", "t")
    seeded = await seed_history(stores.aio, plan, now=NOW)  # its last snapshots: NOW
    fresh = await build_rollout_report(plan, stores.aio, now=NOW + timedelta(minutes=29))
    assert [(w.stale, w.latest is not None) for w in fresh.waves[:3]] == [
        (False, True),
        (False, True),
        (False, False),
    ]
    # WHEN the timer has not written for 31 minutes (every 15 minutes: two periods missed)
    later = NOW + timedelta(minutes=31)
    report = await build_rollout_report(
        plan, stores.aio, now=later, stale_after=stale_after_for("0 */15 * * * *")
    )
    pilot = report.waves[0]
    # THEN the figures say when they are from, flagged stale, and why
    assert pilot.stale
    assert pilot.to_dict()["figuresAt"] == NOW.isoformat()
    assert "older than 30 minutes" in pilot.notes[-1]
    page = render_html(report)
    overview = page[page.index('<table class="overview">') : page.index("</table>")]
    assert f'{NOW:%Y-%m-%d %H:%M} UTC</time> <span class="stale"' in overview
    assert overview.count('class="stale"') == 2  # the pilot and the second wave; the others have none
    assert seeded.pilot in overview
    # AND an hourly timer allows two hours
    hourly = await build_rollout_report(
        plan, stores.aio, now=later, stale_after=stale_after_for("0 0 * * * *")
    )
    assert not hourly.waves[0].stale


@pytest.mark.parametrize(
    ("schedule", "after"),
    [
        ("0 */15 * * * *", timedelta(minutes=30)),
        ("0 */5 * * * *", timedelta(minutes=10)),
        ("0 0 * * * *", timedelta(hours=2)),
        ("0 0 */6 * * *", timedelta(hours=12)),
        ("*/3 * * * * *", timedelta(seconds=6)),
        ("0 0 0 * * *", timedelta(days=2)),
        ("0 0 0 1 1 *", DEFAULT_STALE_AFTER),
        ("0 5,35 * * * *", DEFAULT_STALE_AFTER),
        ("", DEFAULT_STALE_AFTER),
        (None, DEFAULT_STALE_AFTER),
    ],
)
def test_the_stale_age_is_two_periods_of_the_timers_schedule(schedule: str | None, after: timedelta) -> None:
    assert stale_after_for(schedule) == after


@pytest.mark.parametrize("raw", ["²", "٣", "1²", "0", "367", "-1", "1e2", "", "99999"])
def test_days_are_ascii_digits_in_range(raw: str) -> None:
    assert parse_days(raw) is None


def test_days_in_range_are_read() -> None:
    assert [parse_days(d) for d in ("1", " 30 ", "366")] == [1, 30, 366]


@pytest.mark.parametrize("raw", ["²", "٣"])
def test_the_cli_refuses_days_that_are_not_ascii_digits(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(html=None, json=True, wave=None, days=raw)
    assert run_report(args, {}) == EXIT_USAGE
    assert "--days: expected a whole number from 1 to 366" in capsys.readouterr().err
