"""The helpdesk and prompt-frequency gates: each holds a ready wave on crafted tickets or sign-ins and
releases it when the numbers recover; unset, they are not evaluated at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from shared.config.helpdesk import Helpdesk, HelpdeskStandardWebhooks
from shared.helpdesk.store import RETENTION, record_ticket, tickets_namespace
from shared.helpdesk.tickets import parse_ticket
from shared.rollout.lifecycle import SignInResult, evaluate_waves
from shared.rollout.wave_state import WaveState
from shared.state import StateStores
from tests.unit.lifecycle.fakes import Clock, FakeEvidence

PILOT = {f"p{i}" for i in range(10)}
UPNS = {f"p{i}": f"P{i}@Contoso.com" for i in range(10)}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
Build = Callable[..., Any]


def _with_helpdesk(deps: Any) -> Any:
    helpdesk = Helpdesk(standard_webhooks=HelpdeskStandardWebhooks(secrets=[SecretStr(SECRET)]))
    return replace(deps, plan=deps.plan.model_copy(update={"helpdesk": helpdesk}))


async def _ready_pilot(deps: Any, evidence: FakeEvidence, clock: Clock) -> None:
    """The pilot registered, in report-only, with clean report-only sign-ins: every base gate passes."""
    evidence.members["pilot"], evidence.registered, evidence.upns = PILOT, set(PILOT), dict(UPNS)
    await evaluate_waves(deps, correlation_id="t1")
    await evaluate_waves(deps, correlation_id="t2")
    clock.advance(hours=1)
    evidence.sign_ins += [SignInResult(f"p{i % 10}", clock.now, "reportOnlySuccess") for i in range(25)]


async def _ticket(stores: StateStores, ticket_id: str, requester: str, at: datetime, **extra: Any) -> str:
    ticket = parse_ticket(
        {
            "id": ticket_id,
            "requesterUserPrincipalName": requester,
            "category": "Authenticator",
            "state": "open",
            "createdAt": at.isoformat(),
            **extra,
        }
    )
    mfa = extra.get("state") != "deleted"
    return (await record_ticket(stores.aio.kv, ticket, source="t", mfa_related=mfa, now=at)).value


async def test_mfa_tickets_hold_a_ready_wave_and_release_it_when_the_window_passes(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN a pilot of 10 whose plan allows 10 MFA tickets per 100 members over 3 days
    gates = {"minSoakDays": 0, "maxMfaTicketsPer100Users": 10, "ticketWindowDays": 3}
    deps = _with_helpdesk(make_deps(promotion="auto", gates=gates)[0])
    await _ready_pilot(deps, evidence, clock)
    # AND two members raised MFA tickets (one under another case of their UPN), an outsider one
    await _ticket(stores, "INC-1", "p1@contoso.com", clock.now - timedelta(hours=2))
    await _ticket(stores, "INC-2", "P2@CONTOSO.COM", clock.now - timedelta(hours=1))
    await _ticket(stores, "INC-3", "stranger@contoso.com", clock.now - timedelta(hours=1))
    # WHEN the timer evaluates / THEN the wave holds on 20 tickets per 100 members
    held = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert (held.action, held.failing) == ("hold", ["mfa-tickets"])
    gate = held.gate("mfa-tickets")
    assert gate is not None
    assert (gate.measured, gate.threshold) == (20.0, 10)
    assert gate.detail == (
        "2 of 10 members raised MFA tickets (2 tickets) in the last 3 days; "
        "1 unattributed (the requester is no wave member's UPN or mail)"
    )
    # WHEN one ticket turns out to be spam and is deleted / THEN 10 per 100: still within the limit
    assert (
        await _ticket(
            stores,
            "INC-2",
            "p2@contoso.com",
            clock.now - timedelta(hours=1),
            state="deleted",
            updatedAt=clock.now.isoformat(),
        )
        == "updated"
    )
    clock.advance(minutes=1)
    # AND the tickets fall out of the 3-day window as days pass: promoted
    clock.advance(days=3)
    evidence.sign_ins += [SignInResult(f"p{i % 10}", clock.now, "reportOnlySuccess") for i in range(25)]
    promoted = (await evaluate_waves(deps, correlation_id="t4")).decisions[0]
    assert (promoted.action, promoted.new_state) == ("promote", WaveState.ENFORCED)
    released = promoted.gate("mfa-tickets")
    assert released is not None
    assert (released.passed, released.measured) == (True, 0.0)


async def test_the_ticket_gate_holds_while_no_helpdesk_source_is_configured(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    deps = make_deps(promotion="auto", gates={"minSoakDays": 0, "maxMfaTicketsPer100Users": 5})[0]
    await _ready_pilot(deps, evidence, clock)
    held = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert held.failing == ["mfa-tickets"]
    assert "no helpdesk source is configured" in held.detail or held.gates[-1].detail.startswith(
        "no helpdesk"
    )


def _sign_ins(user: str, day: datetime, *, prompts: int, quiet: int) -> list[SignInResult]:
    """``prompts`` interactive sign-ins that asked for MFA and ``quiet`` that did not, on one day."""
    return [
        *(SignInResult(user, day + timedelta(minutes=i), "", True, True) for i in range(prompts)),
        *(SignInResult(user, day + timedelta(minutes=10 + i), "", True, False) for i in range(quiet)),
    ]


async def test_frequent_mfa_prompts_hold_a_ready_wave_and_release_it_when_they_ease(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN a pilot that allows 3 MFA prompts per member per active day over 2 days
    gates = {"minSoakDays": 0, "maxMfaPromptsPerUserPerDay": 3, "promptWindowDays": 2}
    deps = make_deps(promotion="auto", gates=gates)[0]
    await _ready_pilot(deps, evidence, clock)
    # AND p1 was prompted 6 times and p2 4 times today, p3 signed in without prompts; an outsider 50
    today = clock.now - timedelta(minutes=50)
    evidence.sign_ins += [
        *_sign_ins("p1", today, prompts=6, quiet=1),
        *_sign_ins("p2", today, prompts=4, quiet=0),
        *_sign_ins("p3", today, prompts=0, quiet=2),
        *_sign_ins("outsider", today, prompts=50, quiet=0),
    ]
    # WHEN the timer evaluates / THEN 10 prompts over 3 active user-days (3.33) hold the wave
    held = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert (held.action, held.failing) == ("hold", ["mfa-prompts"])
    gate = held.gate("mfa-prompts")
    assert gate is not None
    assert (gate.measured, gate.detail) == (3.33, "10 MFA prompts over 3 active user-days in the last 2 days")
    # AND the one sign-in read asked for the MFA details
    assert evidence.sign_in_reads[-1] is True
    # WHEN two days pass with calmer days (1 prompt each for p1, p2) / THEN it is promoted
    clock.advance(days=2)
    evidence.sign_ins += [
        *_sign_ins("p1", clock.now - timedelta(hours=3), prompts=1, quiet=3),
        *_sign_ins("p2", clock.now - timedelta(hours=3), prompts=1, quiet=0),
        *(SignInResult(f"p{i % 10}", clock.now, "reportOnlySuccess") for i in range(25)),
    ]
    promoted = (await evaluate_waves(deps, correlation_id="t4")).decisions[0]
    assert (promoted.action, promoted.new_state) == ("promote", WaveState.ENFORCED)
    released = promoted.gate("mfa-prompts")
    assert released is not None
    assert (released.passed, released.measured) == (True, 1.0)


async def test_unset_gates_are_not_evaluated_and_the_sign_in_read_stays_plain(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    deps = make_deps(promotion="auto", gates={"minSoakDays": 0})[0]
    await _ready_pilot(deps, evidence, clock)
    decision = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert [g.name for g in decision.gates] == [
        "registration",
        "report-only-impact",
        "soak",
        "no-critical-alerts",
    ]
    assert set(evidence.sign_in_reads) == {False}


async def test_tickets_count_members_matched_by_upn_or_mail_once_each_and_report_the_unattributed(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN a pilot of 10 that allows 25 members with MFA tickets per 100 over 3 days
    gates = {"minSoakDays": 0, "maxMfaTicketsPer100Users": 25, "ticketWindowDays": 3}
    deps = _with_helpdesk(make_deps(promotion="auto", gates=gates)[0])
    await _ready_pilot(deps, evidence, clock)
    # AND p1's mailbox address (what Jira reports) is not their UPN
    evidence.mails = {"p1": "Ada.Lovelace@contoso.com"}
    # AND p2 raised five MFA tickets, p1 one under their mail address, two came from nobody we know
    for i in range(5):
        await _ticket(stores, f"INC-{i}", "p2@contoso.com", clock.now - timedelta(hours=1))
    await _ticket(stores, "INC-9", "ada.lovelace@contoso.com", clock.now - timedelta(hours=1))
    await _ticket(stores, "INC-7", "nobody@contoso.com", clock.now - timedelta(hours=1))
    await _ticket(stores, "INC-8", "nobody@contoso.com", clock.now - timedelta(hours=1))
    # WHEN the timer evaluates / THEN 2 of 10 members raised tickets: 20 per 100, within the limit
    decision = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    gate = decision.gate("mfa-tickets")
    assert gate is not None
    assert (gate.passed, gate.measured) == (True, 20.0)
    assert gate.detail == (
        "2 of 10 members raised MFA tickets (6 tickets) in the last 3 days; "
        "2 unattributed (the requester is no wave member's UPN or mail)"
    )


async def test_prompts_count_the_report_only_twins_would_be_prompts_and_one_mfa_flow_once(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    # GIVEN a pilot that allows 1 MFA prompt per member per active day
    gates = {"minSoakDays": 0, "maxMfaPromptsPerUserPerDay": 1, "promptWindowDays": 2}
    deps = make_deps(promotion="auto", gates=gates)[0]
    await _ready_pilot(deps, evidence, clock)
    today = clock.now - timedelta(minutes=50)
    evidence.sign_ins += [
        # p1: one MFA flow logged twice (interrupted, then completed): one prompt
        SignInResult("p1", today, "", True, True, "flow-1"),
        SignInResult("p1", today + timedelta(minutes=1), "", True, True, "flow-1"),
        # p2: nothing asked, but the wave's own report-only policy would have, three times
        *(
            SignInResult(
                "p2", today + timedelta(minutes=i), "reportOnlyInterrupted", True, False, f"flow-2{i}"
            )
            for i in range(3)
        ),
        # p3: a sign-in the twin let through
        SignInResult("p3", today, "reportOnlySuccess", True, False, "flow-3"),
    ]
    # WHEN the timer evaluates / THEN 4 prompts over 3 active user-days hold the wave
    held = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    gate = held.gate("mfa-prompts")
    assert gate is not None
    assert (gate.passed, gate.measured) == (False, 1.33)
    assert gate.detail == (
        "4 MFA prompts over 3 active user-days in the last 2 days; "
        "3 of them would be asked by the report-only policy"
    )


async def test_prompts_without_the_mfa_requirement_field_are_not_measurable_never_zero(
    make_deps: Build, evidence: FakeEvidence, clock: Clock
) -> None:
    gates = {"minSoakDays": 0, "maxMfaPromptsPerUserPerDay": 3, "promptWindowDays": 2}
    deps = make_deps(promotion="auto", gates=gates)[0]
    await _ready_pilot(deps, evidence, clock)
    # GIVEN interactive sign-ins none of which says whether MFA was required (a v1.0 read)
    today = clock.now - timedelta(minutes=50)
    evidence.sign_ins += [SignInResult(f"p{i}", today, "", True, None) for i in range(3)]
    held = (await evaluate_waves(deps, correlation_id="t3")).decisions[0]
    assert "mfa-prompts" in held.failing
    gate = held.gate("mfa-prompts")
    assert gate is not None
    assert (gate.passed, gate.measured) == (False, None)
    assert gate.detail.startswith("not measurable: none of the 3 interactive sign-ins")


async def test_the_timer_deletes_tickets_past_their_retention_but_not_on_a_dry_run(
    make_deps: Build, stores: StateStores, evidence: FakeEvidence, clock: Clock
) -> None:
    gates = {"minSoakDays": 0, "maxMfaTicketsPer100Users": 10}
    deps = _with_helpdesk(make_deps(promotion="auto", gates=gates)[0])
    old = clock.now - RETENTION - timedelta(days=1)
    assert await _ticket(stores, "INC-OLD", "p1@contoso.com", old) == "stored"
    namespace = tickets_namespace(old.date())
    await evaluate_waves(deps, correlation_id="t1", dry_run=True)
    assert len(stores.kv.values(namespace)) == 1
    await evaluate_waves(deps, correlation_id="t2")
    assert stores.kv.values(namespace) == []
