"""Unregistered members are nudged once per period and escalated to their manager after N days."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.errors import RetryableError
from shared.rollout.lifecycle import Contact, evaluate_waves, nudge_period
from tests.unit.lifecycle.fakes import START, Clock, FakeEvidence, FakeMail

Build = Callable[..., Any]


def _mail() -> FakeMail:
    return FakeMail(
        {
            "p1": Contact("p1", "Ann", "ann@contoso.com", "Boss", "boss@contoso.com"),
            "p2": Contact("p2", "Bob", "bob@contoso.com"),
            "p3": Contact("p3", "Cy", None),
        }
    )


async def test_nudges_once_per_period_then_again_and_escalate(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN the pilot registering (nudges every 2 days, manager after 5) with p0 registered
    mail = _mail()
    deps, _, _ = make_deps(mail)
    evidence.members["pilot"], evidence.registered = {"p0", "p1", "p2", "p3"}, {"p0"}
    # WHEN the timer runs twice in the same period
    first = await evaluate_waves(deps, correlation_id="c1")
    await evaluate_waves(deps, correlation_id="c2")
    # THEN p1 and p2 got one e-mail each; p3 has no mailbox; p0 is registered
    assert sorted(m.to[0] for m in mail.sent) == ["ann@contoso.com", "bob@contoso.com"]
    assert "https://aka.ms/mysecurityinfo" in mail.sent[0].body
    assert first.nudges[0].to_dict() == {
        "wave": "pilot",
        "sent": 2,
        "escalated": 0,
        "skipped": 1,
        "failed": 0,
    }
    # WHEN two days pass / THEN they are nudged again
    clock.advance(days=2)
    await evaluate_waves(deps, correlation_id="c3")
    assert len(mail.sent) == 4
    # WHEN p2 registers and five days have passed since the first nudge / THEN Ann's manager hears
    evidence.registered.add("p2")
    clock.advance(days=3)
    report = (await evaluate_waves(deps, correlation_id="c4")).nudges[0]
    assert report.escalated == ["p1"]
    assert [m.to[0] for m in mail.sent[4:]] == ["ann@contoso.com", "boss@contoso.com"]
    assert mail.sent[-1].subject == "MFA not set up yet: Ann"


async def test_a_failed_send_is_retried_next_run_and_others_still_get_theirs(
    make_deps: Build, evidence: FakeEvidence
) -> None:
    mail = _mail()
    deps, _, _ = make_deps(mail)
    evidence.members["pilot"] = {"p1", "p2"}
    mail.fail_next = RetryableError("throttled")
    report = (await evaluate_waves(deps, correlation_id="c1")).nudges[0]
    assert (report.failed, report.sent) == (["p1"], ["p2"])
    report = (await evaluate_waves(deps, correlation_id="c2")).nudges[0]
    assert (report.sent, report.skipped) == (["p1"], 1)


async def test_nudges_off_in_the_plan_send_nothing(make_deps: Build, evidence: FakeEvidence) -> None:
    mail = _mail()
    deps, _, _ = make_deps(mail, nudges={"enabled": False})
    evidence.members["pilot"] = {"p1"}
    await evaluate_waves(deps, correlation_id="c1")
    assert mail.sent == []


def test_the_period_counts_from_the_first_nudge() -> None:
    from datetime import timedelta

    assert [nudge_period(START, START + timedelta(days=d), 3) for d in (0, 2.9, 3, 6.5)] == [0, 0, 1, 2]
