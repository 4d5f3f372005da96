"""Announcements before report-only and before enforcement: rendering, the plan's checks, exactly
once per member and stage (redelivery, concurrent runs, a send whose answer is lost, a crash after
the send), the mail budget, and the announcedDaysBefore gate holding and releasing a wave."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ConfigError, RetryableError
from shared.rollout.lifecycle import LifecycleDeps, evaluate_waves
from shared.rollout.lifecycle.announcements import (
    Announcer,
    Recipient,
    announce_key,
    format_date,
    render_announcement,
)
from shared.rollout.wave_state import WaveState, read_wave_state, write_wave_state
from shared.state import StateStores
from tests.unit.lifecycle.announce_fakes import (
    Crash,
    FakeAnnouncementMail,
    SleepingClock,
    comms_plan,
    people,
)
from tests.unit.lifecycle.fakes import START, Clock, FakeEvidence, Recorder

SENDER = "waveguard@contoso.com"
Build = Callable[..., tuple[LifecycleDeps, Announcer]]


@pytest.fixture
def mail() -> FakeAnnouncementMail:
    return FakeAnnouncementMail()


@pytest.fixture
def build(
    tmp_path: Path, stores: StateStores, evidence: FakeEvidence, clock: Clock, mail: FakeAnnouncementMail
) -> Build:
    def make(communications: dict[str, Any] | None = None, **pilot: Any) -> tuple[LifecycleDeps, Announcer]:
        plan = comms_plan(tmp_path, communications, **pilot)
        announcer = Announcer(plan, stores.aio, mail, sender=SENDER, clock=clock, sleep=SleepingClock(clock))
        deps = LifecycleDeps(
            plan=plan,
            stores=stores.aio,
            evidence=evidence,
            sync_policies=Recorder(),
            start_membership=Recorder(),
            clock=clock,
            announcer=announcer,
        )
        return deps, announcer

    return make


async def _registering(stores: StateStores) -> None:
    await write_wave_state(stores.aio.kv, "pilot", WaveState.REGISTERING, START - timedelta(days=1))


def _members(evidence: FakeEvidence, mail: FakeAnnouncementMail, *names: str) -> None:
    mail.members["pilot"] = people(*names)
    evidence.members["pilot"] = {f"u-{n}" for n in names}


# --- rendering and the plan -------------------------------------------------------------------


def test_the_message_fills_every_placeholder_and_escapes_directory_names_in_html(tmp_path: Path) -> None:
    html_template = {
        "subject": "MFA for {displayName}\u2009from {date}",
        "body": "<p>Hello {displayName},</p><p>from {date}: "
        "<a href='{registerUrl}'>register</a>; {contact}</p>",
        "format": "html",
    }
    plan = comms_plan(tmp_path, {"templates": {"enforce": html_template}}, gates={"announcedDaysBefore": 7})
    wave = plan.wave("pilot")
    bob = Recipient("u-1", 'Bob <script>"x"</script> &\nCo', "bob@contoso.com")
    text = render_announcement(plan, wave, "reportOnly", bob, date(2026, 3, 9))
    assert text.content_type == "text"
    assert text.to == ["bob@contoso.com"]
    assert text.subject == "Multi-factor authentication is coming to your account from Monday 9 March 2026"
    assert "Hello Bob <script>" in text.body  # plain text: shown as written
    assert "https://aka.ms/mysecurityinfo" in text.body
    assert "the service desk (ext. 4357)" in text.body
    assert "rollout wave 'pilot'" in text.body
    page = render_announcement(plan, wave, "enforce", bob, date(2026, 3, 9))
    assert page.content_type == "html"
    assert "&lt;script&gt;&quot;x&quot;&lt;/script&gt; &amp;" in page.body
    assert "<script>" not in page.body
    assert "\n" not in page.subject
    assert page.subject.startswith('MFA for Bob <script>"x"</script> & Co')
    assert format_date(date(2026, 3, 9)) == "Monday 9 March 2026"


@pytest.mark.parametrize(
    ("communications", "pilot", "expected"),
    [
        (
            {"templates": {"reportOnly": {"subject": "Hi", "body": "Hello {nmae}"}}},
            {"gates": {"announcedDaysBefore": 3}},
            "communications.templates.reportOnly.body: unknown placeholder {nmae}",
        ),
        (
            {},
            {
                "gates": {"announcedDaysBefore": 3},
                "communications": {"templates": {"enforce": {"subject": "{date:%d}", "body": "x"}}},
            },
            "waves[0].communications.templates.enforce.subject: placeholder {date:%d} takes no format",
        ),
        ({}, {}, "waves[0].gates.announcedDaysBefore: required"),
        (
            {"enabled": False},
            {"gates": {"announcedDaysBefore": 3}},
            "waves[0].gates.announcedDaysBefore: the wave sends no announcements",
        ),
    ],
)
def test_the_plan_refuses_what_cannot_work_naming_the_field(
    tmp_path: Path, communications: dict[str, Any], pilot: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        comms_plan(tmp_path, communications, **pilot)
    assert expected in str(caught.value)


# --- exactly once -----------------------------------------------------------------------------


async def test_a_redelivered_and_a_concurrent_tick_announce_each_member_once(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    # GIVEN the pilot registering with three members, one without a mailbox
    deps, _ = build(gates={"announcedDaysBefore": 3})
    await _registering(stores)
    _members(evidence, mail, "ann", "bob")
    mail.members["pilot"] += people("cy", mail=False)
    # WHEN the tick runs, is redelivered, and two more run at once
    first = await evaluate_waves(deps, correlation_id="t1")
    await evaluate_waves(deps, correlation_id="t1")
    await asyncio.gather(evaluate_waves(deps, correlation_id="t2"), evaluate_waves(deps, correlation_id="t3"))
    # THEN each member with a mailbox got the reportOnly announcement once
    assert sorted(mail.sent_to()) == ["ann@contoso.com", "bob@contoso.com"]
    report = first.announcements[0].to_dict()
    assert (report["stage"], report["sent"], report["noMailbox"], report["remaining"]) == (
        "reportOnly",
        2,
        1,
        0,
    )
    assert report["date"] == "2026-03-05"
    assert "Thursday 5 March 2026" in mail.sent[0].subject
    # AND one audit entry per batch, with counts only
    audits = await stores.aio.audit.list_actions(["wave.announce"])
    assert len(audits) == 1
    assert audits[0].details == {
        "stage": "reportOnly",
        "batch": 1,
        "sent": 2,
        "recovered": 0,
        "alreadySent": 0,
        "busy": 0,
        "failed": 0,
        "undeliverable": 0,
        "date": "2026-03-05",
    }
    claim = await stores.aio.idempotency.claim(
        announce_key("pilot", "reportOnly", "u-ann"), ttl=timedelta(days=1)
    )
    assert claim.completed


@pytest.mark.parametrize("failure", [RetryableError("answer lost"), Crash()])
async def test_a_send_whose_answer_is_lost_or_whose_process_dies_is_never_sent_twice(
    build: Build,
    stores: StateStores,
    evidence: FakeEvidence,
    mail: FakeAnnouncementMail,
    clock: Clock,
    failure: BaseException,
) -> None:
    # GIVEN the send to the first member goes out and then fails (or the process dies)
    _, announcer = build(gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "ann", "bob")
    mail.fail_after_send.append(failure)
    wave = announcer.plan.wave("pilot")
    if isinstance(failure, Crash):
        with pytest.raises(Crash):
            await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")
        clock.advance(minutes=16)  # the dead holder's claim expires
    else:
        first = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")
        assert (first.sent, first.failed, first.remaining) == (1, 1, 1)
    # WHEN the next run comes
    again = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c2")
    # THEN it finds the draft sent and only records it: one e-mail each
    assert sorted(mail.sent_to()) == ["ann@contoso.com", "bob@contoso.com"]
    assert again.recovered == 1
    assert again.remaining == 0
    assert mail.state_reads == 1
    # AND a third run has nothing to do
    third = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c3")
    assert (third.to_send, third.already_sent, len(mail.sent)) == (0, 2, 2)


async def test_a_send_refused_before_it_left_is_sent_from_the_same_draft_next_time(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "ann")
    mail.fail_before_send.append(RetryableError("throttled"))
    wave = announcer.plan.wave("pilot")
    assert (await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")).failed == 1
    assert (await announcer.run(wave, "reportOnly", actor="t", correlation_id="c2")).sent == 1
    assert (len(mail.drafts), mail.sent_to()) == (1, ["ann@contoso.com"])


async def test_an_address_exchange_refuses_is_recorded_and_no_longer_holds_the_wave(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    deps, announcer = build(gates={"announcedDaysBefore": 1})
    await _registering(stores)
    _members(evidence, mail, "ann", "bob")
    evidence.registered = set(evidence.members["pilot"])
    mail.undeliverable.add("bob@contoso.com")
    report = (await evaluate_waves(deps, correlation_id="t1")).announcements[0]
    assert (report.sent, report.undeliverable, report.failed, report.remaining) == (1, 1, 0, 0)
    again = await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    assert (again.to_send, again.no_mailbox) == (0, 1)
    clock.advance(days=1, minutes=1)
    decision = (await evaluate_waves(deps, correlation_id="t2")).decisions[0]
    gate = decision.gate("announced")
    assert gate is not None
    assert gate.detail == "reportOnly: 1/1 members told at least 1 days ago, 1 without a usable mailbox"
    assert decision.action == "move-to-report-only"
    # ann got the reportOnly announcement, then (the wave in report-only) the enforce one; bob none
    assert [(m.to[0], "required" in m.subject) for m in mail.sent] == [
        ("ann@contoso.com", False),
        ("ann@contoso.com", True),
    ]


async def test_break_glass_accounts_are_never_announced_to(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 3})
    mail.members["pilot"] = [
        *people("ann"),
        Recipient("u-bg", "Break glass", "bg@contoso.com", "bg-admin1@contoso.onmicrosoft.com"),
    ]
    report = await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    assert (report.break_glass, report.members, mail.sent_to()) == (1, 1, ["ann@contoso.com"])


# --- the budget -------------------------------------------------------------------------------


async def test_batches_stay_within_the_minute_budget_and_stop_when_the_run_time_is_up(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN 5 members, 2 messages a minute, runs of at most 60 s
    budget = {"perMinute": 2, "perDay": 100, "maxSecondsPerRun": 60}
    _, announcer = build({"budget": budget}, gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "a", "b", "c", "d", "e")
    wave = announcer.plan.wave("pilot")
    # WHEN a run sends / THEN two now, two a minute later, and the last one is left for the next run
    report = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")
    assert (report.sent, report.batches, report.remaining, report.stopped) == (4, 2, 1, "time")
    assert [round(s) for s in announcer._sleep.slept] == [60]  # type: ignore[attr-defined]
    # AND a run straight after waits for the budget rather than exceed it
    report = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c2")
    assert (report.sent, report.remaining) == (1, 0)
    assert len(mail.sent) == 5
    assert len(await stores.aio.audit.list_actions(["wave.announce"])) == 3


async def test_the_day_budget_spreads_a_big_wave_over_days(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    budget = {"perMinute": 30, "perDay": 3, "maxSecondsPerRun": 120}
    _, announcer = build({"budget": budget}, gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "a", "b", "c", "d", "e")
    wave = announcer.plan.wave("pilot")
    report = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")
    assert (report.sent, report.remaining, report.stopped) == (3, 2, "day budget spent")
    clock.advance(hours=12)
    assert (await announcer.run(wave, "reportOnly", actor="t", correlation_id="c2")).sent == 0
    clock.advance(hours=13)
    assert (await announcer.run(wave, "reportOnly", actor="t", correlation_id="c3")).sent == 2


# --- the gate ---------------------------------------------------------------------------------


async def test_the_gate_holds_each_move_until_the_members_were_told_days_before(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN the pilot registering, everyone registered, announcements 3 days before each move
    deps, _ = build(
        gates={"announcedDaysBefore": 3, "minSoakDays": 0, "minReportOnlySignIns": 0},
        promotion="auto",
    )
    await _registering(stores)
    names = [f"m{i:02d}" for i in range(20)]
    _members(evidence, mail, *names)
    evidence.registered = set(evidence.members["pilot"])
    # WHEN the timer ticks / THEN the reportOnly announcement goes out and the wave holds
    result = await evaluate_waves(deps, correlation_id="t1")
    decision = result.decisions[0]
    assert (decision.action, decision.gate("announced").passed) == ("hold", False)  # type: ignore[union-attr]
    assert "failing: announced" in decision.detail
    assert len(mail.sent) == 20
    # WHEN two days pass and a member joins late / THEN still held; the late one is told at once
    clock.advance(days=2)
    mail.members["pilot"] += people("late")
    evidence.members["pilot"].add("u-late")
    evidence.registered.add("u-late")
    assert (await evaluate_waves(deps, correlation_id="t2")).decisions[0].action == "hold"
    assert mail.sent_to()[-1] == "late@contoso.com"
    # WHEN the third day is over / THEN it moves (20 of 21 told 3 days before: at least 95%)
    clock.advance(days=1, minutes=1)
    moved = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    gate = moved.gate("announced")
    assert gate is not None
    assert gate.passed
    assert gate.measured == round(20 / 21, 4)
    assert (moved.action, moved.applied) == ("move-to-report-only", True)
    # AND in report-only the enforce announcement goes out; promotion waits 3 more days
    assert len(mail.sent) == 21 + 21
    assert "required to sign in" in mail.sent[-1].subject
    clock.advance(days=1)
    held = (await evaluate_waves(deps, correlation_id="t4")).decisions[0]
    assert (held.action, held.failing) == ("hold", ["announced"])
    clock.advance(days=2, minutes=1)
    promoted = (await evaluate_waves(deps, correlation_id="t5")).decisions[0]
    assert (promoted.action, promoted.applied) == ("promote", True)
    assert (await read_wave_state(stores.aio.kv, "pilot")).state is WaveState.ENFORCED
    assert len(mail.sent) == 42  # nothing more once enforced


async def test_a_member_still_waiting_holds_the_wave_even_past_the_share(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    deps, _ = build(gates={"announcedDaysBefore": 1, "announcedShare": 0.5})
    await _registering(stores)
    _members(evidence, mail, "ann", "bob")
    evidence.registered = set(evidence.members["pilot"])
    mail.fail_before_send.append(RetryableError("throttled"))
    await evaluate_waves(deps, correlation_id="t1")
    clock.advance(days=2)
    mail.fail_before_send.append(RetryableError("throttled"))
    # the gate reads before this tick's sends: ann told two days ago, bob still waiting
    decision = (await evaluate_waves(deps, correlation_id="t2")).decisions[0]
    gate = decision.gate("announced")
    assert gate is not None
    assert not gate.passed
    assert "1 still to be told" in gate.detail
    assert decision.action == "hold"


async def test_without_the_gate_or_the_announcer_nothing_changes(
    make_deps: Callable[..., Any], stores: StateStores, evidence: FakeEvidence
) -> None:
    deps, _, _ = make_deps()
    await _registering(stores)
    evidence.members["pilot"], evidence.registered = {"p1"}, {"p1"}
    result = await evaluate_waves(deps, correlation_id="t1")
    assert result.decisions[0].gate("announced") is None
    assert result.announcements == []


async def test_status_shows_the_gate_like_the_others(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    from cli.waves import render_table
    from shared.rollout.lifecycle import collect_status

    deps, _ = build(gates={"announcedDaysBefore": 7})
    await _registering(stores)
    _members(evidence, mail, "ann", "bob")
    mail.members["pilot"] += people("cy", mail=False)
    rows = await collect_status(deps, correlation_id="s")
    assert rows[0].to_dict()["announced"] == {
        "name": "announced",
        "passed": False,
        "measured": 0.0,
        "threshold": 0.95,
        "detail": (
            "reportOnly: 0/2 members told at least 7 days ago, 2 still to be told, 1 without a usable mailbox"
        ),
    }
    assert "announced" in rows[0].gates_failing
    assert (
        "  announced    0% told in time, at least 95%  (reportOnly: 0/2 members told at least 7 days ago"
        in render_table(rows)
    )
    assert mail.sent == []  # status sends nothing
