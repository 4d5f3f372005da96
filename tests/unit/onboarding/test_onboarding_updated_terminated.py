"""employee.updated moves waves without lowering protection; employee.terminated cleans up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from onboarding_fakes import NOW, World, hire_event, make_world, transient

from shared.errors import NotFoundError, RetryableError
from shared.onboarding import TerminationOutcome, UpdateOutcome, process_hr_message
from shared.onboarding.ports import IssuedTap
from shared.rollout.wave_state import WaveState, write_wave_state
from tests.aio import aio

FINANCE = "WaveGuard - Wave 2 Finance and HR"
SALES = "WaveGuard - Wave 3 Sales and Marketing"


def _finance_member(world: World) -> tuple[str, str]:
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001", department="Finance").id
    group_id = world.graph.add_group(FINANCE)
    world.graph.groups[group_id]["members"].add(user_id)
    return user_id, group_id


def _moved_to_sales(envelope_id: str = "upd-1") -> str:
    return hire_event("employee.updated", envelope_id, department="Sales", changes=["department"]).to_json()


async def test_department_change_moves_the_user_to_the_new_wave() -> None:
    world = make_world()
    user_id, finance_id = _finance_member(world)
    outcome = await process_hr_message(_moved_to_sales(), world.deps)
    assert outcome == UpdateOutcome(
        "moved", user_id=user_id, wave="sales-marketing", removed_from=("finance-hr",)
    )
    assert world.graph.members_of(SALES) == {user_id}
    assert world.graph.groups[finance_id]["members"] == set()
    actions = [e.action for e in world.stores.audit.list()]
    assert "wave.member.add" in actions
    assert "wave.member.remove" in actions


async def test_a_user_in_an_enforced_wave_stays_enforced() -> None:
    # GIVEN finance-hr is enforced and sales-marketing only report-only
    world = make_world()
    user_id, finance_id = _finance_member(world)
    await write_wave_state(aio(world.stores.kv), "finance-hr", WaveState.ENFORCED, NOW)
    await write_wave_state(aio(world.stores.kv), "sales-marketing", WaveState.REPORT_ONLY, NOW)
    # WHEN HR moves them to Sales
    outcome = await process_hr_message(_moved_to_sales(), world.deps)
    # THEN they join the new wave but stay in the enforced one
    assert outcome == UpdateOutcome("moved", user_id=user_id, wave="sales-marketing", kept_in=("finance-hr",))
    assert user_id in world.graph.groups[finance_id]["members"]
    assert world.graph.members_of(SALES) == {user_id}
    assert "wave.member.keep" in [e.action for e in world.stores.audit.list()]


async def test_moving_between_two_enforced_waves_leaves_the_old_one() -> None:
    world = make_world()
    _user_id, finance_id = _finance_member(world)
    for wave in ("finance-hr", "sales-marketing"):
        await write_wave_state(aio(world.stores.kv), wave, WaveState.ENFORCED, NOW)
    await process_hr_message(_moved_to_sales(), world.deps)
    assert world.graph.groups[finance_id]["members"] == set()


async def test_a_change_that_keeps_the_wave_changes_nothing() -> None:
    world = make_world()
    user_id, _ = _finance_member(world)
    text = hire_event(
        "employee.updated", "upd-2", managerUserPrincipalName="grace.hopper@contoso.com"
    ).to_json()
    outcome = await process_hr_message(text, world.deps)
    assert outcome == UpdateOutcome("unchanged", user_id=user_id, wave="finance-hr")
    assert "add_member" not in world.graph.calls
    assert "remove_member" not in world.graph.calls


async def test_replayed_update_is_applied_once() -> None:
    world = make_world()
    _finance_member(world)
    await process_hr_message(_moved_to_sales(), world.deps)
    again = await process_hr_message(_moved_to_sales(), world.deps)
    assert again.status == "duplicate"  # type: ignore[union-attr]
    assert world.graph.calls.count("add_member") == 1


async def test_update_for_an_unknown_user_is_settled_with_an_alert() -> None:
    world = make_world()
    outcome = await process_hr_message(_moved_to_sales(), world.deps)
    assert isinstance(outcome, NotFoundError)
    assert len(world.queues.sent) == 1


async def test_registration_record_follows_the_new_wave() -> None:
    world = make_world()
    user_id, _ = _finance_member(world)
    world.stores.kv.put("registration", user_id, {"wave": "finance-hr", "status": "pending"})
    await process_hr_message(_moved_to_sales(), world.deps)
    record = world.stores.kv.get("registration", user_id)
    assert record is not None
    assert record.value == {"wave": "sales-marketing", "status": "pending"}


async def test_termination_deletes_pending_taps_and_stops_tracking() -> None:
    # GIVEN an onboarded hire with a TAP and a registration record
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    await process_hr_message(hire_event().to_json(), world.deps)
    assert world.graph.usable_taps(user_id)
    # WHEN HR terminates them
    text = hire_event("employee.terminated", "term-1", hireDate=None, terminationDate="2026-12-02").to_json()
    outcome = await process_hr_message(text, world.deps)
    # THEN the TAP is gone and tracking stopped, both audited
    assert outcome == TerminationOutcome("cleaned", user_id=user_id, taps_deleted=1, tracking_stopped=True)
    assert world.graph.usable_taps(user_id) == []
    assert world.stores.kv.get("registration", user_id) is None
    actions = [e.action for e in world.stores.audit.list()]
    assert "tap.delete" in actions
    assert "registration.stop" in actions
    # AND a replay is recognised as one
    again = await process_hr_message(text, world.deps)
    assert again == TerminationOutcome("duplicate", user_id=user_id)


async def test_termination_of_someone_not_in_entra_is_audited() -> None:
    world = make_world()
    text = hire_event("employee.terminated", "term-2", hireDate=None).to_json()
    outcome = await process_hr_message(text, world.deps)
    assert outcome == TerminationOutcome("not-found")
    assert world.stores.audit.list()[0].action == "hire.terminate"


async def test_a_hire_waiting_for_provisioning_is_cancelled_when_hr_terminates_them() -> None:
    # GIVEN a hire not provisioned yet (a re-check is scheduled)
    world = make_world()
    hire = hire_event()
    assert (await process_hr_message(hire.to_json(), world.deps)).status == "rechecking"  # type: ignore[union-attr]
    # AND HR then terminates them (a later event)
    leaver = (
        hire_event("employee.terminated", "term-3", hireDate=None)
        .to_json()
        .replace("2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z")
    )
    await process_hr_message(leaver, world.deps)
    # WHEN the account appears and the re-check runs (when it was scheduled)
    world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001")
    world.clock.advance(minutes=30)
    outcome = await process_hr_message(hire.to_json(), world.deps)
    # THEN nothing is issued: no TAP, no e-mail, no group
    assert outcome.status == "cancelled"  # type: ignore[union-attr]
    assert world.graph.taps == {}
    assert world.graph.outbox == []
    assert "hire.cancel" in [e.action for e in world.stores.audit.list()]


async def test_a_rehire_after_a_termination_is_onboarded() -> None:
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    await process_hr_message(hire_event("employee.terminated", "term-4", hireDate=None).to_json(), world.deps)
    rehire = (
        hire_event(envelope_id="rehire").to_json().replace("2026-11-30T08:00:00Z", "2026-11-30T10:00:00Z")
    )
    outcome = await process_hr_message(rehire, world.deps)
    assert outcome.status == "done"  # type: ignore[union-attr]
    assert world.graph.usable_taps(user_id)


async def test_a_termination_redelivered_after_a_rehire_leaves_the_rehire_alone() -> None:
    # GIVEN a leaver, then a rehire onboarded with a fresh TAP
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    leaver = hire_event("employee.terminated", "term-5", hireDate=None).to_json()
    await process_hr_message(leaver, world.deps)
    rehire = (
        hire_event(envelope_id="rehire-5").to_json().replace("2026-11-30T08:00:00Z", "2026-11-30T10:00:00Z")
    )
    assert (await process_hr_message(rehire, world.deps)).status == "done"  # type: ignore[union-attr]
    [tap] = world.graph.usable_taps(user_id)
    # WHEN HR's retry delivers the old termination again
    outcome = await process_hr_message(leaver, world.deps)
    # THEN it is a duplicate: the rehire's TAP stays
    assert outcome == TerminationOutcome("duplicate", user_id=user_id)
    assert world.graph.usable_taps(user_id) == [tap]


async def test_a_termination_first_delivered_after_a_later_rehire_is_superseded() -> None:
    # GIVEN HR's termination (08:00) never got through until after the rehire (10:00) was onboarded
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    rehire = (
        hire_event(envelope_id="rehire-6").to_json().replace("2026-11-30T08:00:00Z", "2026-11-30T10:00:00Z")
    )
    assert (await process_hr_message(rehire, world.deps)).status == "done"  # type: ignore[union-attr]
    [tap] = world.graph.usable_taps(user_id)
    # WHEN the old termination arrives at last (first delivery: no key records it)
    late = hire_event("employee.terminated", "term-6", hireDate=None).to_json()
    outcome = await process_hr_message(late, world.deps)
    # THEN it is superseded, audited as such: the rehire's TAP and tracking stay
    assert outcome == TerminationOutcome("superseded", user_id=user_id)
    assert world.graph.usable_taps(user_id) == [tap]
    assert world.stores.kv.get("registration", user_id) is not None
    assert "hire.terminate.superseded" in [e.action for e in world.stores.audit.list()]


async def test_a_late_termination_never_pulls_the_recorded_leaving_time_back() -> None:
    world = make_world()
    later = hire_event("employee.terminated", "term-7b", hireDate=None).to_json()
    later = later.replace("2026-11-30T08:00:00Z", "2026-11-30T12:00:00Z")
    await process_hr_message(later, world.deps)
    await process_hr_message(
        hire_event("employee.terminated", "term-7a", hireDate=None).to_json(), world.deps
    )
    record = world.stores.kv.get("leavers", "employee-E9001")
    assert record is not None
    assert record.value["terminatedAt"].startswith("2026-11-30T12:00:00")


async def test_a_termination_racing_the_hire_leaves_no_tap_and_sends_no_mail() -> None:
    # GIVEN HR's termination processed completely while the hire's worker is about to issue the
    # TAP (after its first leaver check; the termination found no TAP to delete)
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    issue_tap = world.graph.create_tap
    termination = hire_event("employee.terminated", "term-race", hireDate=None).to_json()

    async def tap_after_termination(user: str, **kwargs: Any) -> IssuedTap:
        cleaned = await process_hr_message(termination, world.deps)
        assert cleaned == TerminationOutcome("cleaned", user_id=user_id, taps_deleted=0)
        return await issue_tap(user, **kwargs)

    world.graph.create_tap = tap_after_termination  # type: ignore[method-assign]
    # WHEN the hire's worker goes on
    outcome = await process_hr_message(hire_event().to_json(), world.deps)
    # THEN it deletes the TAP it issued, mails nobody, and says the hire was cancelled
    assert outcome.status == "cancelled"  # type: ignore[union-attr]
    assert world.graph.usable_taps(user_id) == []
    assert world.graph.outbox == []
    actions = [e.action for e in world.stores.audit.list()]
    assert {"tap.delete", "hire.cancel"} <= set(actions)


async def test_a_cancelled_hire_whose_tap_delete_failed_deletes_it_on_the_next_delivery() -> None:
    # GIVEN the race above, and Graph failing the delete of the TAP once
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    issue_tap = world.graph.create_tap
    termination = hire_event("employee.terminated", "term-race", hireDate=None).to_json()

    async def tap_after_termination(user: str, **kwargs: Any) -> IssuedTap:
        await process_hr_message(termination, world.deps)
        return await issue_tap(user, **kwargs)

    world.graph.create_tap = tap_after_termination  # type: ignore[method-assign]
    world.graph.fail["delete_tap"] = [transient("delete tap")]
    # WHEN the hire fails there and is delivered again
    with pytest.raises(RetryableError):
        await process_hr_message(hire_event().to_json(), world.deps)
    outcome = await process_hr_message(hire_event().to_json(), world.deps)
    # THEN the second delivery cancels the hire and deletes the unsent TAP
    assert outcome.status == "cancelled"  # type: ignore[union-attr]
    assert world.graph.usable_taps(user_id) == []
    assert world.graph.outbox == []


async def test_a_hire_whose_termination_came_first_mails_nothing_and_leaves_no_tap() -> None:
    # GIVEN HR's termination (09:00) processed before the hire's (08:00) first delivery
    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    leaver = (
        hire_event("employee.terminated", "term-first", hireDate=None)
        .to_json()
        .replace("2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z")
    )
    await process_hr_message(leaver, world.deps)
    # WHEN the hire is delivered (a first attempt reads no leaver record before the TAP)
    outcome = await process_hr_message(hire_event().to_json(), world.deps)
    # THEN the check after the TAP sees the leaver: the TAP is deleted, nothing is mailed
    assert outcome.status == "cancelled"  # type: ignore[union-attr]
    assert world.graph.usable_taps(user_id) == []
    assert world.graph.outbox == []
    actions = [e.action for e in world.stores.audit.list()]
    assert {"tap.create", "tap.delete", "hire.cancel"} <= set(actions)
    # AND a redelivery is a duplicate
    again = await process_hr_message(hire_event().to_json(), world.deps)
    assert again.status == "duplicate"  # type: ignore[union-attr]
    assert world.graph.outbox == []


@pytest.mark.parametrize("path", ["existing account", "no manager"])
async def test_a_first_attempt_for_a_leaver_writes_nothing_on_the_paths_without_a_tap(path: str) -> None:
    # GIVEN HR's termination (09:00) processed before the hire's (08:00) first delivery, for an
    # account that gets no TAP (an existing one) or whose TAP would be held (no manager)
    from shared.graph.account import AccountFacts

    world = make_world()
    user_id = world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001").id
    if path == "existing account":
        world.graph.facts[user_id] = AccountFacts(created_at=NOW - timedelta(days=400))
        event = hire_event()
    else:
        event = hire_event(managerUserPrincipalName=None)
        world.graph.managers.pop(user_id, None)
    leaver = (
        hire_event("employee.terminated", "term-first", hireDate=None)
        .to_json()
        .replace("2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z")
    )
    await process_hr_message(leaver, world.deps)
    # WHEN the hire is delivered
    outcome = await process_hr_message(event.to_json(), world.deps)
    # THEN it is cancelled before any write: no wave group, no alert, no registration record
    assert outcome.status == "cancelled"  # type: ignore[union-attr]
    assert all(user_id not in g["members"] for g in world.graph.groups.values())
    assert world.stores.kv.get("registration", user_id) is None
    assert world.queues.on("alerts") == []
    assert world.graph.usable_taps(user_id) == []
    assert "hire.cancel" in [e.action for e in world.stores.audit.list()]
