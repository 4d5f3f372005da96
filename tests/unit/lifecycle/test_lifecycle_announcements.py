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

from shared.errors import ConfigError, PermanentError, RetryableError
from shared.rollout.lifecycle import LifecycleDeps, evaluate_waves
from shared.rollout.lifecycle.announcements import (
    Announcer,
    Recipient,
    announce_key,
    cycle_of,
    format_date,
    recipient_level,
    render_announcement,
)
from shared.rollout.lifecycle.evaluate import (
    FUNCTION_TIMEOUT,
    SYNC_KEY,
    SYNC_NAMESPACE,
    TICK_MARGIN,
    rollback_wave,
)
from shared.rollout.lifecycle.mail_budget import MAIL_BUDGET_NAMESPACE
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
        announce_key("pilot", "reportOnly", "u-ann", cycle_of(START - timedelta(days=1))),
        ttl=timedelta(days=1),
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
    deps, announcer = build({"allowUnreachable": True}, gates={"announcedDaysBefore": 1})
    await _registering(stores)
    _members(evidence, mail, "ann", "bob")
    evidence.registered = set(evidence.members["pilot"])
    mail.undeliverable.add("bob@contoso.com")
    report = (await evaluate_waves(deps, correlation_id="t1")).announcements[0]
    assert (report.sent, report.undeliverable, report.failed, report.remaining) == (1, 1, 0, 0)
    again = await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    assert (again.to_send, again.no_mailbox) == (0, 1)
    clock.advance(days=1, hours=3, minutes=1)  # 12:00 UTC of the promised day has passed
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
    # WHEN the promised day has come at 12:00 UTC / THEN it moves (20 of 21 told 3 days before)
    clock.advance(days=1, hours=3, minutes=1)
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
            "reportOnly: 0/3 members told at least 7 days ago, 2 still to be told, "
            "1 without a usable mailbox (counted as not told)"
        ),
    }
    assert "announced" in rows[0].gates_failing
    assert (
        "  announced    0% told in time, at least 95%  (reportOnly: 0/3 members told at least 7 days ago"
        in render_table(rows)
    )
    assert mail.sent == []  # status sends nothing


# --- review fixes: takeover, the promised date, unreachable members, cycles, failures, time -----


@pytest.mark.parametrize("where", ["draft", "state"])
async def test_a_stalled_holder_whose_claim_was_taken_over_never_sends_a_second_message(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock, where: str
) -> None:
    # GIVEN a holder stuck inside Graph (creating the draft, or checking a recorded one)
    _, announcer = build(gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "ann")
    wave = announcer.plan.wave("pilot")
    if where == "state":  # a recorded draft from a send refused before it left
        mail.fail_before_send.append(RetryableError("throttled"))
        await announcer.run(wave, "reportOnly", actor="t", correlation_id="c0")
    mail.stall_at = where
    deadline = clock() + timedelta(hours=1)
    stuck = asyncio.create_task(
        announcer.run(wave, "reportOnly", actor="cli", correlation_id="A", deadline=deadline)
    )
    await mail.stalled.wait()
    # WHEN its claim expires, the timer takes over and sends, and then the stuck holder wakes up
    clock.advance(minutes=16)
    successor = await announcer.run(wave, "reportOnly", actor="timer", correlation_id="B")
    mail.resume.set()
    late = await stuck
    # THEN one e-mail: the late holder finds the row taken and sends nothing
    assert mail.sent_to() == ["ann@contoso.com"]
    assert (successor.sent, late.sent, late.busy) == (1, 0, 1)
    assert len(mail.drafts) == (2 if where == "draft" else 1)  # its own draft stays unsent


async def test_a_takeover_sends_the_draft_the_stalled_holder_created_but_never_recorded(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "ann")
    wave = announcer.plan.wave("pilot")
    snap = await announcer.snapshot(wave, "reportOnly")
    key = announce_key("pilot", "reportOnly", "u-ann", snap.cycle)
    # GIVEN a holder that claimed, created its draft and died before recording it
    await stores.aio.idempotency.claim(key, ttl=timedelta(days=1), in_progress_expiry=timedelta(minutes=15))
    message = render_announcement(announcer.plan, wave, "reportOnly", people("ann")[0], START.date())
    draft = await mail.create_draft(message, tag=key)
    clock.advance(minutes=16)
    # WHEN the next run takes the claim over / THEN it sends that draft, not a second one
    report = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c")
    assert (report.sent, list(mail.drafts), mail.drafts[draft]["sent"]) == (1, [draft], True)


async def test_a_holder_that_held_its_claim_too_long_leaves_the_send_to_the_next_run(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 3})
    _members(evidence, mail, "ann")
    wave = announcer.plan.wave("pilot")
    mail.stall_at = "draft"
    stuck = asyncio.create_task(
        announcer.run(
            wave, "reportOnly", actor="cli", correlation_id="A", deadline=clock() + timedelta(hours=1)
        )
    )
    await mail.stalled.wait()
    clock.advance(minutes=10)  # past half the 15-minute expiry: too close to a takeover to send
    mail.resume.set()
    late = await stuck
    assert (late.sent, late.busy, mail.sent) == (0, 1, [])
    again = await announcer.run(wave, "reportOnly", actor="t", correlation_id="B")
    assert (again.sent, len(mail.drafts), mail.sent_to()) == (1, 1, ["ann@contoso.com"])


async def test_the_gate_opens_at_noon_utc_on_the_date_the_message_names(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN ann told on Monday 2 March 09:00 UTC that report-only comes "from Thursday 5 March"
    deps, _ = build(gates={"announcedDaysBefore": 3})
    await _registering(stores)
    _members(evidence, mail, "ann")
    evidence.registered = set(evidence.members["pilot"])
    await evaluate_waves(deps, correlation_id="t1")
    assert "Thursday 5 March 2026" in mail.sent[0].subject
    # WHEN three days have passed, at 11:00 UTC (still Wednesday in UTC-12) / THEN it holds
    clock.advance(days=3, hours=2)
    held = (await evaluate_waves(deps, correlation_id="t2")).decisions[0]
    gate = held.gate("announced")
    assert gate is not None
    assert (held.action, gate.passed) == ("hold", False)
    assert "holds it until 2026-03-05 12:00 UTC" in gate.detail
    # WHEN it is 12:00 UTC on the 5th / THEN it moves
    clock.advance(hours=1)
    assert (await evaluate_waves(deps, correlation_id="t3")).decisions[0].action == "move-to-report-only"


@pytest.mark.parametrize(("allow", "action"), [(False, "hold"), (True, "move-to-report-only")])
async def test_a_wave_nobody_can_be_told_moves_only_when_the_plan_allows_it(
    build: Build,
    stores: StateStores,
    evidence: FakeEvidence,
    mail: FakeAnnouncementMail,
    allow: bool,
    action: str,
) -> None:
    deps, _ = build({"allowUnreachable": allow}, gates={"announcedDaysBefore": 1})
    await _registering(stores)
    mail.members["pilot"] = people("ann", "bob", mail=False)
    evidence.members["pilot"] = {"u-ann", "u-bob"}
    evidence.registered = {"u-ann", "u-bob"}
    decision = (await evaluate_waves(deps, correlation_id="t1")).decisions[0]
    gate = decision.gate("announced")
    assert gate is not None
    assert (decision.action, gate.passed) == (action, allow)
    assert gate.detail.startswith("reportOnly: no member can be told (2 without a usable mailbox)")


async def test_the_share_counts_members_who_could_not_be_told_unless_the_plan_allows_it(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN 8 members with a mailbox and 2 without, 90% to be told
    deps, _ = build(gates={"announcedDaysBefore": 1, "announcedShare": 0.9})
    await _registering(stores)
    names = [f"m{i}" for i in range(8)]
    _members(evidence, mail, *names)
    mail.members["pilot"] += people("x", "y", mail=False)
    evidence.members["pilot"] |= {"u-x", "u-y"}
    evidence.registered = set(evidence.members["pilot"])
    await evaluate_waves(deps, correlation_id="t1")
    clock.advance(days=1, hours=4)
    # WHEN every one with a mailbox had the notice / THEN 8 of 10 is not 90%: it holds
    decision = (await evaluate_waves(deps, correlation_id="t2")).decisions[0]
    gate = decision.gate("announced")
    assert gate is not None
    assert (decision.action, gate.measured) == ("hold", 0.8)
    assert "2 without a usable mailbox (counted as not told)" in gate.detail


async def test_a_wave_rolled_back_and_promoted_again_gets_a_fresh_notice(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN the pilot in report-only, its enforce announcement sent, then promoted
    deps, _ = build(
        gates={"announcedDaysBefore": 1, "minSoakDays": 0, "minReportOnlySignIns": 0}, promotion="auto"
    )
    await write_wave_state(stores.aio.kv, "pilot", WaveState.REPORT_ONLY, START - timedelta(days=1))
    _members(evidence, mail, "ann")
    evidence.registered = set(evidence.members["pilot"])
    await evaluate_waves(deps, correlation_id="t1")
    clock.advance(days=1, hours=4)
    assert (await evaluate_waves(deps, correlation_id="t2")).decisions[0].action == "promote"
    assert len(mail.sent) == 1
    # WHEN it is rolled back to report-only and the timer ticks
    clock.advance(days=1)
    await rollback_wave(deps, "pilot", actor="ops", correlation_id="rb", reason="incident")
    again = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    # THEN the members are told again before a new promotion, which waits for the new notice
    assert len(mail.sent) == 2
    assert "required to sign in" in mail.sent[-1].subject
    assert (again.action, again.failing) == ("hold", ["announced"])
    clock.advance(days=1, hours=4)
    assert (await evaluate_waves(deps, correlation_id="t4")).decisions[0].action == "promote"
    assert len(mail.sent) == 2


@pytest.mark.parametrize("error", [RetryableError("Graph answered 503"), RuntimeError("unexpected")])
async def test_an_announcement_read_that_fails_holds_only_that_wave_s_gate(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, error: Exception
) -> None:
    deps, _ = build(gates={"announcedDaysBefore": 1})
    await _registering(stores)
    _members(evidence, mail, "ann")
    evidence.registered = set(evidence.members["pilot"])
    await stores.aio.kv.put(SYNC_NAMESPACE, SYNC_KEY, {"pending": True, "reason": "an earlier change"})
    mail.read_error = error
    # WHEN the member read fails / THEN the tick still syncs the baseline; the wave holds on the gate
    result = await evaluate_waves(deps, correlation_id="t1")
    assert result.policy_synced
    decision = result.decisions[0]
    gate = decision.gate("announced")
    assert gate is not None
    assert (decision.action, gate.passed) == ("hold", False)
    assert gate.detail == (
        f"reportOnly: the announcement's progress could not be read ({type(error).__name__}: {error})"
    )
    assert result.announcements[0].error == f"{type(error).__name__}: {error}"


async def test_announcements_stop_at_the_tick_s_deadline_checked_before_each_member(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    # GIVEN a tick whose reads take 200 s and a mailbox that takes 10 s a message
    deps, _ = build({"budget": {"perMinute": 20, "maxSecondsPerRun": 120}}, gates={"announcedDaysBefore": 1})
    await _registering(stores)
    _members(evidence, mail, *[f"m{i:02d}" for i in range(10)])
    mail.clock, mail.read_seconds, mail.send_seconds = clock, 200, 10
    # WHEN the tick announces / THEN no send starts after 4 minutes from the tick's start
    report = (await evaluate_waves(deps, correlation_id="t1")).announcements[0]
    end = START + FUNCTION_TIMEOUT - TICK_MARGIN
    assert end == START + timedelta(seconds=240)
    assert mail.send_times
    assert all(t <= end for t in mail.send_times)
    assert (report.stopped, report.sent + report.remaining, report.sent < 10) == ("time", 10, True)


async def test_a_member_graph_refuses_is_retried_then_quarantined_without_stopping_the_others(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 1})
    _members(evidence, mail, "ann", "bob", "cy")
    mail.refuse["bob@contoso.com"] = PermanentError(
        "Graph answered 400: bob@contoso.com: message blocked",
        status=400,
        code="ErrorMessageSubmissionBlocked",
    )
    wave = announcer.plan.wave("pilot")
    first = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c1")
    assert (first.sent, first.failed, first.stopped, first.remaining) == (2, 1, "", 1)
    second = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c2")
    third = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c3")
    assert (second.failed, third.undeliverable, mail.refusals) == (1, 1, 3)
    fourth = await announcer.run(wave, "reportOnly", actor="t", correlation_id="c4")
    assert (fourth.to_send, fourth.no_mailbox) == (0, 1)
    assert sorted(mail.sent_to()) == ["ann@contoso.com", "cy@contoso.com"]


async def test_a_refusal_of_the_sender_stops_the_run(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build({"budget": {"perMinute": 1}}, gates={"announcedDaysBefore": 1})
    _members(evidence, mail, "ann", "bob")
    mail.refuse["ann@contoso.com"] = PermanentError(
        "Graph answered 403: ErrorAccessDenied", status=403, code="ErrorAccessDenied"
    )
    report = await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    assert (report.stopped, report.sent, report.remaining, mail.sent) == ("refused", 0, 2, [])
    assert report.error is not None
    assert "ErrorAccessDenied" in report.error


@pytest.mark.parametrize(
    ("status", "code", "message", "recipient"),
    [
        (403, "ErrorAccessDenied", "Access is denied", False),
        (404, "ErrorInvalidUser", "the sender has no mailbox", False),
        (400, "MailboxNotEnabledForRESTAPI", "REST API is not yet supported for this mailbox", False),
        (None, None, "something unknown", False),
        (400, "ErrorInvalidRecipients", "At least one recipient is not valid", True),
        (400, "ErrorMessageSubmissionBlocked", "blocked", True),
        (None, "Other", "ann@contoso.com bounced", True),
    ],
)
def test_refusals_are_the_sender_s_or_the_recipient_s(
    status: int | None, code: str | None, message: str, recipient: bool
) -> None:
    exc = PermanentError(message, status=status, code=code)
    assert recipient_level(exc, people("ann")[0]) is recipient


async def test_a_corrupt_budget_record_counts_as_empty(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build(gates={"announcedDaysBefore": 1})
    _members(evidence, mail, "ann")
    await stores.aio.kv.put(MAIL_BUDGET_NAMESPACE, SENDER, {"recent": ["x"], "hours": "garbage"})
    report = await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    assert report.sent == 1


async def test_a_run_stops_between_batches_once_the_stage_is_no_longer_due(
    build: Build, evidence: FakeEvidence, mail: FakeAnnouncementMail
) -> None:
    _, announcer = build({"budget": {"perMinute": 1}}, gates={"announcedDaysBefore": 1})
    _members(evidence, mail, "ann", "bob", "cy")
    asked: list[bool] = []

    async def still_due() -> bool:
        asked.append(True)
        return False  # the wave moved meanwhile

    report = await announcer.run(
        announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c", still_due=still_due
    )
    assert (report.sent, report.stopped, report.remaining, len(asked)) == (1, "stage changed", 2, 1)


async def test_the_minute_budget_counts_a_batch_from_when_it_went_out(
    build: Build, stores: StateStores, evidence: FakeEvidence, mail: FakeAnnouncementMail, clock: Clock
) -> None:
    _, announcer = build(
        {"budget": {"perMinute": 2, "maxSecondsPerRun": 60}}, gates={"announcedDaysBefore": 1}
    )
    _members(evidence, mail, "ann", "bob")
    mail.clock, mail.send_seconds = clock, 25  # a slow mailbox: the batch takes 50 s
    await announcer.run(announcer.plan.wave("pilot"), "reportOnly", actor="t", correlation_id="c")
    stored = await stores.aio.kv.get(MAIL_BUDGET_NAMESPACE, SENDER)
    assert stored is not None
    assert stored.value["recent"] == [(START + timedelta(seconds=50)).timestamp()] * 2
