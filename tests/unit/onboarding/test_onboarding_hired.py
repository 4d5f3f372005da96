"""employee.hired with in-memory fakes: wave group, one TAP, one e-mail to the manager, exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from onboarding_fakes import NOW, World, hire_event, make_world, plan, transient

from shared.errors import NotFoundError, PermanentError, RetryableError, SafetyViolationError
from shared.graph.account import AccountFacts
from shared.names import ALERTS, HR_EVENTS
from shared.onboarding import HireOutcome, hire_progress, process_hr_message, recheck_delay, tap_start
from shared.onboarding.common import WAVE_GROUPS_NAMESPACE
from shared.rollout.wave_state import WaveState
from shared.state import Versioned
from shared.state.memory import MemoryKeyValueStore
from tests.aio import aio

FINANCE_GROUP = "WaveGuard - Wave 2 Finance and HR"


def _hire(world: World, **fields: object) -> str:
    return world.graph.add_user(
        "ada.lovelace@contoso.com", employee_id="E9001", display_name="Ada Lovelace", **fields
    ).id


async def _process(world: World, envelope_text: str) -> object:
    return await process_hr_message(envelope_text, world.deps)


def _everything_stored(world: World) -> str:
    """Every piece of state, audit and queue traffic as one text, to look for secrets in."""
    memory = world.stores
    parts = [repr(memory.kv.__dict__), repr(memory.idempotency.__dict__)]
    parts += [repr(entry) for entry in memory.audit.list(limit=1000)]
    parts += [envelope.to_json() for _, envelope, _ in world.queues.sent]
    return "\n".join(parts)


async def test_hire_joins_the_wave_gets_one_tap_and_the_manager_one_email(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a Finance hire already provisioned in Entra, with Grace as manager
    world = make_world()
    user_id = _hire(world)
    caplog.set_level(logging.DEBUG)
    # WHEN the hire event is processed
    outcome = await _process(world, hire_event().to_json())
    # THEN they are in the finance-hr wave group (created, since the tenant had none)
    assert outcome == HireOutcome("done", user_id=user_id, wave="finance-hr")
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    # AND hold exactly one TAP, starting at 00:00 UTC on the hire date, single use, 480 minutes
    [(method, value)] = world.graph.taps[user_id]
    assert (method.start_at, method.lifetime_minutes, method.is_usable_once) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        480,
        True,
    )
    # AND Grace got exactly one e-mail from the service mailbox holding that TAP
    [(sender, mail)] = world.graph.outbox
    assert sender == "waveguard@contoso.com"
    assert list(mail.to) == ["grace.hopper@contoso.com"]
    assert mail.subject == "Temporary Access Pass for your new team member"
    assert value in mail.body
    assert "https://aka.ms/mysecurityinfo" in mail.body
    # AND the hire is tracked for registration
    record = world.stores.kv.get("registration", user_id)
    assert record is not None
    assert record.value["status"] == "pending"
    assert record.value["wave"] == "finance-hr"
    assert record.value["tapExpiresAt"] == "2026-12-01T08:00:00+00:00"
    # AND every write is audited under the envelope id, by the onboarding actor
    actions = [(e.action, e.actor, e.correlation_id) for e in world.stores.audit.list()]
    assert {a for a, _, _ in actions} >= {"wave.group.create", "wave.member.add", "tap.create", "tap.deliver"}
    assert {(actor, cid) for _, actor, cid in actions} == {("waveguard/onboarding", "whk-1")}
    # AND the TAP value is nowhere but in the e-mail: not in state, audit, queues or logs
    assert value not in _everything_stored(world)
    assert value not in caplog.text
    assert all(value not in json.dumps(r.__dict__, default=str) for r in caplog.records)


async def test_the_same_message_three_times_gives_one_tap_and_one_email() -> None:
    world = make_world()
    user_id = _hire(world)
    text = hire_event().to_json()
    outcomes = [await _process(world, text) for _ in range(3)]
    assert [o.status for o in outcomes] == ["done", "duplicate", "duplicate"]  # type: ignore[attr-defined]
    assert len(world.graph.outbox) == 1
    assert world.graph.calls.count("create_tap") == 1
    assert len(world.graph.usable_taps(user_id)) == 1


async def test_crash_between_tap_and_email_is_recovered_with_one_working_tap_mailed() -> None:
    # GIVEN Graph fails the sendMail once (after the TAP was created)
    world = make_world()
    user_id = _hire(world)
    world.graph.fail["send_draft"] = [transient("send draft")]
    text = hire_event().to_json()
    # WHEN the message is processed: the host sees a retryable failure (the group add, which goes
    # to Graph with the send, happened)
    with pytest.raises(RetryableError):
        await _process(world, text)
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    assert world.graph.outbox == []
    # AND the retry succeeds: it sends the saved draft, whose TAP is still the live one
    await _process(world, text)
    # THEN the manager got one e-mail, and its TAP is the one usable TAP of the user (one TAP ever)
    [(_, mail)] = world.graph.outbox
    [value] = world.graph.usable_taps(user_id)
    assert value in mail.body
    assert world.graph.calls.count("create_tap") == 1
    # AND the group add was not repeated on the retry, and each step is audited exactly once
    assert world.graph.calls.count("add_member") == 1
    actions = [e.action for e in world.stores.audit.list()]
    assert (actions.count("wave.member.add"), actions.count("tap.deliver")) == (1, 1)


async def test_throttled_group_add_is_retried_and_done_once() -> None:
    world = make_world()
    user_id = _hire(world)
    world.graph.fail["add_member"] = [transient("add member")]
    text = hire_event().to_json()
    # WHEN the group write is throttled (it comes after the e-mail: the TAP is out already)
    with pytest.raises(RetryableError):
        await _process(world, text)
    assert len(world.graph.outbox) == 1
    # THEN the retry adds the member from the progress the first attempt left: one TAP, one e-mail
    await _process(world, text)
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    assert len(world.graph.outbox) == 1
    assert len(world.graph.taps[user_id]) == 1


async def test_a_message_held_by_another_worker_is_retried_later() -> None:
    world = make_world()
    _hire(world)
    world.stores.idempotency.claim("onboarding:whk-1", ttl=timedelta(days=1))
    outcome = await _process(world, hire_event().to_json())
    assert type(outcome).__name__ == "BusyError"  # re-sent with a delay (see the deferral test)
    assert world.graph.outbox == []


@pytest.mark.parametrize("lost", ["lose_send_answer", "lose_batch_answer"])
async def test_a_crash_after_graph_sent_the_mail_sends_no_second_mail_and_no_second_tap(lost: str) -> None:
    # GIVEN Graph accepts the send (and the group add that goes with it) but the worker never
    # learns it: the send's own answer, or the whole batch's, is lost (connection, process killed)
    world = make_world()
    user_id = _hire(world)
    setattr(world.graph, lost, 1)
    text = hire_event().to_json()
    with pytest.raises(RetryableError):
        await _process(world, text)
    assert len(world.graph.outbox) == 1
    # WHEN the message is delivered again (twice: the second finds the hire done)
    await _process(world, text)
    await _process(world, text)
    # THEN the draft is found sent: no second e-mail, no second TAP, the mailed TAP still works
    [(_, mail)] = world.graph.outbox
    assert world.graph.calls.count("create_tap") == 1
    [value] = world.graph.usable_taps(user_id)
    assert value in mail.body
    # AND the hire is in its wave group, each step audited exactly once
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    actions = [e.action for e in world.stores.audit.list()]
    assert [actions.count(a) for a in ("tap.create", "tap.deliver", "wave.member.add")] == [1, 1, 1]


async def test_user_not_provisioned_yet_is_rechecked_later_with_a_growing_delay() -> None:
    # GIVEN HR announces a hire Entra has not created yet
    world = make_world()
    text = hire_event().to_json()
    # WHEN processed twice (the second time as the scheduled re-check)
    first = await _process(world, text)
    world.clock.advance(seconds=60)
    second = await _process(world, text)
    # THEN the same envelope is scheduled again on hr-events, 60 s then 120 s later
    assert [(q, env.id, d) for q, env, d in world.queues.sent] == [
        (HR_EVENTS, "whk-1", 60),
        (HR_EVENTS, "whk-1", 120),
    ]
    assert (first.status, second.status) == ("rechecking", "rechecking")  # type: ignore[attr-defined]
    # AND nothing was written to the tenant
    assert world.graph.outbox == []
    assert world.graph.taps == {}
    # WHEN the user appears and the re-check comes
    user_id = _hire(world)
    world.clock.advance(seconds=120)
    done = await _process(world, text)
    # THEN the hire is onboarded
    assert done == HireOutcome("done", user_id=user_id, wave="finance-hr")
    assert len(world.graph.outbox) == 1


async def test_user_never_provisioned_raises_a_high_alert_after_the_budget_and_is_recorded() -> None:
    world = make_world(
        plan(provisioningRetry={"budgetHours": 1, "initialDelaySeconds": 600, "maxDelaySeconds": 1200})
    )
    text = hire_event().to_json()
    delays: list[float] = []
    outcome: object = None
    for _ in range(20):
        outcome = await _process(world, text)
        if isinstance(outcome, PermanentError):
            break
        delays.append(world.queues.sent[-1][2] or 0)
        world.clock.advance(seconds=delays[-1])
    # THEN the re-checks grew, were capped, and the last one landed on the budget's end
    assert delays == [600, 1200, 1200, 600]
    assert isinstance(outcome, NotFoundError)
    # AND a high alert is on the alerts queue, naming the envelope
    [alert] = world.queues.on(ALERTS)
    assert alert.payload["severity"] == "high"
    assert alert.payload["labels"]["alertname"] == "HireNotProvisioned"
    assert alert.payload["details"]["envelopeId"] == "whk-1"
    # AND the give-up is recorded in state and the audit log
    progress = hire_progress(world.stores.idempotency, "whk-1")
    assert progress is not None
    assert progress.status == "not-provisioned"
    assert "hire.abandon" in [e.action for e in world.stores.audit.list()]


async def test_hire_found_by_upn_when_entra_has_no_employee_id() -> None:
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", display_name="Ada").id
    outcome = await _process(world, hire_event().to_json())
    assert outcome == HireOutcome("done", user_id=user_id, wave="finance-hr")


async def test_manager_from_entra_when_hr_names_none() -> None:
    world = make_world()
    _hire(world, manager="grace.hopper@contoso.com")
    await _process(world, hire_event(managerUserPrincipalName=None).to_json())
    [(_, mail)] = world.graph.outbox
    assert list(mail.to) == ["grace.hopper@contoso.com"]


async def test_no_manager_in_entra_holds_the_tap_alerts_and_rechecks_later() -> None:
    # GIVEN Entra records no manager for the hire, and the plan has no fallback mailbox
    world = make_world()
    world.graph.default_manager = None
    user_id = _hire(world)
    # WHEN the hire is processed (HR naming a manager changes nothing: only Entra's counts)
    outcome = await _process(world, hire_event().to_json())
    # THEN no TAP, no mail, a HireTapHeld alert, and a re-check on the provisioning schedule
    assert isinstance(outcome, HireOutcome)
    assert outcome.status == "rechecking"
    assert world.graph.taps.get(user_id) is None
    assert world.graph.outbox == []
    names = [a.payload["labels"]["alertname"] for a in world.queues.on(ALERTS)]
    assert "HireTapHeld" in names
    assert len(world.queues.on(HR_EVENTS)) == 1
    # AND the user is still protected: in the wave group
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    # WHEN Entra gets the manager and the re-check runs / THEN the manager gets the TAP
    world.graph.default_manager = world.graph.by_upn("grace.hopper@contoso.com").id
    world.clock.advance(minutes=2)
    await _process(world, world.queues.on(HR_EVENTS)[0].to_json())
    assert len(world.graph.usable_taps(user_id)) == 1
    assert [message.to for _, message in world.graph.outbox] == [("grace.hopper@contoso.com",)]


async def test_break_glass_account_is_never_touched_and_pages_critical() -> None:
    world = make_world()
    world.graph.add_user("bg-admin1@contoso.onmicrosoft.com", employee_id="E9001")
    outcome = await _process(world, hire_event().to_json())
    assert isinstance(outcome, SafetyViolationError)
    assert world.graph.calls.count("add_member") == 0
    assert world.graph.taps == {}
    assert world.graph.outbox == []
    [alert] = world.queues.on(ALERTS)
    assert (alert.payload["severity"], alert.payload["labels"]["alertname"]) == (
        "critical",
        "BreakGlassTargeted",
    )


async def test_an_event_naming_a_break_glass_upn_is_refused_before_graph_is_read() -> None:
    # GIVEN HR names a break-glass account's UPN (whatever employeeId it sends)
    world = make_world()
    world.graph.add_user("bg-admin1@contoso.onmicrosoft.com", employee_id="E9001")
    event = hire_event(employeeId="E-OTHER", userPrincipalName="BG-Admin1@contoso.onmicrosoft.com")
    # WHEN the worker handles it / THEN it is refused (critical) before any Graph call
    outcome = await _process(world, event.to_json())
    assert isinstance(outcome, SafetyViolationError)
    assert world.graph.calls == []
    [alert] = world.queues.on(ALERTS)
    assert alert.payload["labels"]["alertname"] == "BreakGlassTargeted"


async def test_existing_wave_group_is_used_not_created() -> None:
    world = make_world()
    group_id = world.graph.add_group(FINANCE_GROUP)
    user_id = _hire(world)
    await _process(world, hire_event().to_json())
    assert world.graph.groups[group_id]["members"] == {user_id}
    assert "create_security_group" not in world.graph.calls


async def test_explicit_new_hire_wave_policy() -> None:
    world = make_world(plan(wave="pilot"))
    _hire(world)
    outcome = await _process(world, hire_event().to_json())
    assert outcome.wave == "pilot"  # type: ignore[attr-defined]
    assert world.graph.members_of("WaveGuard - Wave 1 Pilot") != set()


@pytest.mark.parametrize(
    ("text", "alertname"),
    [
        ('{"not": "an envelope"}', "HrEventRejected"),
        (
            hire_event().to_json().replace('"type":"employee.hired"', '"type":"employee.promoted"'),
            "HrEventRejected",
        ),
        (hire_event().to_json().replace('"hireDate":"2026-12-01"', '"hireDate":"soon"'), "HrEventRejected"),
    ],
    ids=["bad-envelope", "unknown-type", "bad-hire-date"],
)
async def test_bad_messages_are_settled_and_alerted_not_retried(text: str, alertname: str) -> None:
    world = make_world()
    outcome = await _process(world, text)
    assert isinstance(outcome, PermanentError)
    [alert] = world.queues.on(ALERTS)
    assert alert.payload["labels"]["alertname"] == alertname
    assert world.stores.audit.list()[0].action == f"onboarding.{alertname}"


async def test_graph_outage_propagates_for_the_host_to_retry() -> None:
    world = make_world()
    world.graph.fail["find_user_by_employee_id"] = [transient("find user")]
    with pytest.raises(RetryableError):
        await _process(world, hire_event().to_json())
    assert world.queues.sent == []


def test_tap_start_is_midnight_utc_of_a_future_hire_date_else_now() -> None:
    policy = plan().new_hires
    assert tap_start(date(2026, 12, 1), policy, NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert tap_start(date(2026, 11, 30), policy, NOW) is None  # today: usable now
    assert tap_start(date(2026, 11, 1), policy, NOW) is None
    assert tap_start(None, policy, NOW) is None
    assert tap_start(date(2026, 12, 1), plan(tap={"startAt": "now"}).new_hires, NOW) is None


def test_recheck_delay_grows_by_the_factor_and_is_capped() -> None:
    policy = plan().new_hires  # 60 s, x2, max 3600 s
    delays = [recheck_delay(n, policy, timedelta(hours=24)) for n in range(8)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert recheck_delay(3, policy, timedelta(seconds=30)) == 30
    assert recheck_delay(0, policy, timedelta(0)) == 1


async def test_wave_state_does_not_matter_for_a_new_hire() -> None:
    world = make_world()
    world.stores.kv.put("waves", "finance-hr", {"state": WaveState.ENFORCED.value, "since": NOW.isoformat()})
    _hire(world)
    assert (await _process(world, hire_event().to_json())).wave == "finance-hr"  # type: ignore[attr-defined]


async def test_hires_at_once_into_a_new_wave_create_one_group() -> None:
    # GIVEN three Finance hires processed at the same time and no wave group yet
    world = make_world()
    ids = [
        world.graph.add_user(f"hire{n}@contoso.com", employee_id=f"E70{n}", department="Finance").id
        for n in range(3)
    ]
    texts = [
        hire_event(
            envelope_id=f"whk-{n}", employeeId=f"E70{n}", userPrincipalName=f"hire{n}@contoso.com"
        ).to_json()
        for n in range(3)
    ]
    # WHEN processed concurrently
    await asyncio.gather(*(_process(world, text) for text in texts))
    # THEN exactly one group was created and holds all three
    assert world.graph.calls.count("create_security_group") == 1
    assert world.graph.members_of(FINANCE_GROUP) == set(ids)


async def test_a_group_recorded_by_another_worker_after_our_look_up_is_used_not_created_again() -> None:
    # GIVEN another worker that creates and records the wave group right after this worker found
    # neither the group nor a record of it (the interleaving three concurrent hires can produce)
    world = make_world()
    _hire(world)

    class RacedKeyValueStore(MemoryKeyValueStore):
        raced = False

        def get(self, namespace: str, key: str) -> Versioned | None:
            if namespace == WAVE_GROUPS_NAMESPACE and not self.raced:
                self.raced = True
                self.put(namespace, key, {"groupId": world.graph.add_group(FINANCE_GROUP)})
                return None  # this worker's read came just before the other worker's write
            return super().get(namespace, key)

    state = replace(world.deps.state, kv=aio(RacedKeyValueStore()))
    # WHEN this worker onboards its hire
    await process_hr_message(hire_event().to_json(), replace(world.deps, state=state))
    # THEN it adds the hire to the group the other worker created, and creates none itself
    assert "create_security_group" not in world.graph.calls
    assert len(world.graph.groups) == 2  # the wave group and the break-glass exclusion group
    assert len(world.graph.members_of(FINANCE_GROUP)) == 1


def _lose_the_creation_race(world: World) -> list[str]:
    """Make this worker's next group creation so slow that another worker took its stale marker
    over, created its own Finance wave group and recorded it first; the list gets our group's id."""
    graph = world.graph
    ours: list[str] = []

    async def slow_create(display_name: str, *, description: str) -> str:
        other = graph.add_group(display_name)
        world.stores.kv.put(WAVE_GROUPS_NAMESPACE, "finance-hr", {"groupId": other})
        ours.append(graph.add_group(display_name))
        return ours[0]

    graph.create_security_group = slow_create  # type: ignore[method-assign]
    return ours


async def test_a_creation_that_outlasts_its_marker_yields_to_the_group_recorded_meanwhile() -> None:
    # GIVEN a group creation so slow that another worker took the stale marker over, created its
    # own group and recorded it before this worker's creation returned
    world = make_world()
    _hire(world)
    graph = world.graph
    created_by_us = _lose_the_creation_race(world)
    # WHEN this worker finishes onboarding its hire
    await _process(world, hire_event().to_json())
    # THEN its own group is deleted and the hire is in the one recorded group
    assert created_by_us[0] not in graph.groups
    assert len(graph.groups) == 2  # the wave group and the break-glass exclusion group
    assert len(graph.members_of(FINANCE_GROUP)) == 1
    deleted = [e for e in world.stores.audit.list() if e.action == "wave.group.delete"]
    assert [e.target for e in deleted] == created_by_us


async def test_a_deleted_wave_group_is_created_again() -> None:
    world = make_world()
    _hire(world)
    await _process(world, hire_event().to_json())
    for gid in [gid for gid, g in world.graph.groups.items() if g["displayName"] == FINANCE_GROUP]:
        del world.graph.groups[gid]  # the wave group is deleted (the exclusion group stays)
    world.graph.add_user("new@contoso.com", employee_id="E7777", department="Finance")
    later = hire_event(envelope_id="whk-2", employeeId="E7777", userPrincipalName="new@contoso.com").to_json()
    # the group this process resolved a moment ago is gone: forgotten, and resolved on the retry
    with pytest.raises(RetryableError, match="gone; resolving again"):
        await _process(world, later)
    # within minutes of its creation a missing group may be directory replication: waited for
    with pytest.raises(RetryableError, match="not visible yet"):
        await _process(world, later)
    assert world.graph.calls.count("create_security_group") == 1
    # later, it was deleted: created again
    world.clock.advance(minutes=11)
    await _process(world, later)
    assert world.graph.calls.count("create_security_group") == 2
    assert len(world.graph.members_of(FINANCE_GROUP)) == 1


async def test_a_duplicate_of_the_wave_group_name_does_not_confuse_the_recorded_group() -> None:
    # GIVEN the wave group WaveGuard created and recorded, and a second group of the same name
    world = make_world()
    _hire(world)
    await _process(world, hire_event().to_json())
    [recorded] = [gid for gid, g in world.graph.groups.items() if g["displayName"] == FINANCE_GROUP]
    world.graph.add_group(FINANCE_GROUP)
    # WHEN the next hire into the wave arrives / THEN it joins the recorded group (the name alone
    # is ambiguous: Graph's look-up by name refuses it)
    new = world.graph.add_user("new@contoso.com", employee_id="E7777", department="Finance").id
    later = hire_event(envelope_id="whk-2", employeeId="E7777", userPrincipalName="new@contoso.com").to_json()
    await _process(world, later)
    assert new in world.graph.groups[recorded]["members"]


async def test_a_lost_race_whose_group_delete_failed_is_cleaned_up_by_the_next_reader() -> None:
    # GIVEN the creation race of the test above, and Graph failing the loser's delete once
    world = make_world()
    _hire(world)
    graph = world.graph
    ours = _lose_the_creation_race(world)
    graph.fail["delete_group"] = [transient("delete group")]
    # WHEN the hire is processed, fails, and is delivered again
    with pytest.raises(RetryableError):
        await _process(world, hire_event().to_json())
    await _process(world, hire_event().to_json())
    # THEN the duplicate is gone, one group holds the hire, and the record has no orphan left
    assert ours[0] not in graph.groups
    assert len(graph.groups) == 2  # the wave group and the break-glass exclusion group
    assert len(graph.members_of(FINANCE_GROUP)) == 1
    stored = world.stores.kv.get(WAVE_GROUPS_NAMESPACE, "finance-hr")
    assert stored is not None
    assert "orphans" not in stored.value


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (AccountFacts(created_at=NOW - timedelta(days=14 * 365)), "created 5110 days ago"),
        (AccountFacts(created_at=NOW - timedelta(days=31)), "newHires.maxAccountAgeDays: 30"),
        (AccountFacts(created_at=None), "no creation time"),
        (
            AccountFacts(
                created_at=NOW,
                strong_methods=("#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",),
            ),
            "strong authentication methods (microsoftAuthenticatorAuthenticationMethod)",
        ),
        (
            AccountFacts(created_at=NOW, roles=("Global Administrator",)),
            "directory roles (Global Administrator)",
        ),
    ],
)
async def test_an_account_that_is_not_genuinely_new_gets_no_tap_but_its_wave(
    facts: AccountFacts, reason: str
) -> None:
    # GIVEN a signed hire event for an existing account (the CEO's, a leaked HR secret, a bad HR record)
    world = make_world()
    user_id = _hire(world)
    world.graph.facts[user_id] = facts
    # WHEN it is processed
    outcome = await _process(world, hire_event().to_json())
    # THEN no TAP is issued, nothing is mailed, the refusal is audited and alerted ...
    assert outcome == HireOutcome("done", user_id=user_id, wave="finance-hr")
    assert "create_tap" not in world.graph.calls
    assert world.graph.outbox == []
    [entry] = [e for e in world.stores.audit.list(limit=50) if e.action == "hire.tap.refuse"]
    assert reason in entry.reason
    [alert] = [
        a for a in world.queues.on(ALERTS) if a.payload["labels"]["alertname"] == "HireRefusedExistingAccount"
    ]
    assert alert.payload["severity"] == "high"
    # ... and the rest of onboarding still happens: the wave placement
    assert world.graph.members_of(FINANCE_GROUP) == {user_id}
    # AND a redelivery refuses again without a second alert or TAP
    await _process(world, hire_event(envelope_id="whk-1").to_json())
    assert "create_tap" not in world.graph.calls


async def test_hr_naming_another_manager_is_alerted_and_the_tap_goes_only_to_entras() -> None:
    # GIVEN Entra records Grace; the event names someone else (an attacker's mailbox)
    world = make_world()
    user_id = _hire(world)
    world.graph.add_user("mallory@contoso.com", display_name="Mallory")
    # WHEN the hire is processed
    await _process(world, hire_event(managerUserPrincipalName="mallory@contoso.com").to_json())
    # THEN the TAP goes to Grace only, and the mismatch is alerted
    assert [message.to for _, message in world.graph.outbox] == [("grace.hopper@contoso.com",)]
    assert len(world.graph.usable_taps(user_id)) == 1
    names = [a.payload["labels"]["alertname"] for a in world.queues.on(ALERTS)]
    assert "HireManagerMismatch" in names


async def test_no_manager_in_entra_and_a_fallback_mailbox_delivers_there() -> None:
    world = make_world(
        plan(
            delivery={
                "senderMailbox": "waveguard@contoso.com",
                "fallbackMailbox": "it-onboarding@contoso.com",
            }
        )
    )
    world.graph.default_manager = None
    user_id = _hire(world)
    await _process(world, hire_event(managerUserPrincipalName=None).to_json())
    assert [message.to for _, message in world.graph.outbox] == [("it-onboarding@contoso.com",)]
    assert len(world.graph.usable_taps(user_id)) == 1


async def test_a_hire_whose_claim_another_worker_holds_is_deferred_not_retried_toward_poison() -> None:
    # GIVEN a worker that died mid-hire: its claim is in progress for a while yet
    world = make_world()
    _hire(world)
    envelope = hire_event()
    world.stores.idempotency.claim(f"onboarding:{envelope.id}", ttl=timedelta(days=30))
    world.clock.advance(minutes=1)
    # WHEN the message is delivered again
    outcome = await _process(world, envelope.to_json())
    # THEN this delivery settles, and the same envelope comes back when the claim expires (~5 min)
    assert type(outcome).__name__ == "BusyError"
    [again] = world.queues.on(HR_EVENTS)
    assert again.id == envelope.id
    assert world.queues.sent[-1][2] == pytest.approx(5 * 60 + 1, abs=2)
    assert "create_tap" not in world.graph.calls


async def test_hr_resending_a_hire_while_its_re_check_is_scheduled_starts_no_second_chain() -> None:
    # GIVEN a hire Entra has not created yet: a re-check is scheduled in 60 s
    world = make_world()
    text = hire_event().to_json()
    await _process(world, text)
    # WHEN HR sends the same webhook again 10 s later (ingress queues every delivery)
    world.clock.advance(seconds=10)
    again = await _process(world, text)
    # THEN it waits for the scheduled re-check: no second chain of re-checks, no extra lookup
    assert again.status == "rechecking"  # type: ignore[attr-defined]
    assert [(q, env.id, d) for q, env, d in world.queues.sent] == [(HR_EVENTS, "whk-1", 60)]
    # AND the scheduled re-check itself still runs when it comes
    world.clock.advance(seconds=50)
    user_id = _hire(world)
    done = await _process(world, text)
    assert done.status == "done"  # type: ignore[attr-defined]
    assert len(world.graph.usable_taps(user_id)) == 1
