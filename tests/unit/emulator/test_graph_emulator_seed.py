"""The demo tenant: its size, structure and determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from local.graph_emulator.__main__ import parse_args
from local.graph_emulator.app import EmulatorConfig, build_store
from local.graph_emulator.seed import (
    BREAK_GLASS_GROUP,
    BREAK_GLASS_UPNS,
    DEMO_USER_COUNT,
    DEPARTMENTS,
    IT_PILOT_GROUP,
    SERVICE_MAILBOX_UPN,
    DemoTenant,
    seed_demo,
)
from local.graph_emulator.store import TenantStore


def demo(random_seed: int = 42) -> tuple[TenantStore, DemoTenant]:
    store = TenantStore()
    return store, seed_demo(store, random_seed=random_seed)


def test_the_demo_tenant_has_about_300_people_in_every_department() -> None:
    store, tenant = demo()
    people = [u for u in store.users.values() if u["employeeId"]]

    assert len(store.users) == DEMO_USER_COUNT == tenant.user_count == 303
    assert len(people) == 300
    assert set(Counter(u["department"] for u in people)) == {*DEPARTMENTS, "Executive"}
    assert {u["country"] for u in people} == {"GB", "US", "DE", "FR", "NL", "IN"}
    assert all(u["usageLocation"] == u["country"] for u in people)


def test_upns_and_employee_ids_are_unique() -> None:
    store, _ = demo()
    people = [u for u in store.users.values() if u["employeeId"]]

    upns = [u["userPrincipalName"] for u in people]
    assert len(set(upns)) == len(upns)
    assert all(upn.endswith("@contoso.com") and upn.count(".") == 2 for upn in upns)
    assert sorted(u["employeeId"] for u in people)[0] == "E1000"


def test_everyone_reports_to_their_head_and_heads_report_to_the_ceo() -> None:
    store, tenant = demo()

    for user in store.users.values():
        manager = store.manager_of(user["id"])
        if user["id"] == tenant.ceo_id or user["userPrincipalName"] in (
            *BREAK_GLASS_UPNS,
            SERVICE_MAILBOX_UPN,
        ):
            assert manager is None
        elif str(user["jobTitle"]).startswith("Head of "):
            assert manager is not None
            assert manager["id"] == tenant.ceo_id
        else:
            assert manager is not None
            assert manager["jobTitle"] == f"Head of {user['department']}"


def test_pilot_and_break_glass_groups_hold_the_right_people() -> None:
    store, _ = demo()
    pilot = store.find_group_by_name(IT_PILOT_GROUP)
    exclusion = store.find_group_by_name(BREAK_GLASS_GROUP)

    assert pilot is not None
    assert exclusion is not None
    it_staff = {u["id"] for u in store.users.values() if u["department"] == "IT"}
    assert set(store.member_ids(pilot["id"])) == it_staff
    assert {store.users[i]["userPrincipalName"] for i in store.member_ids(exclusion["id"])} == set(
        BREAK_GLASS_UPNS
    )
    assert all(store.users[i]["employeeId"] is None for i in store.member_ids(exclusion["id"]))


def test_the_same_random_seed_gives_the_same_tenant_and_another_does_not() -> None:
    first, _ = demo(42)
    again, _ = demo(42)
    other, _ = demo(7)

    assert first.to_json()["users"] == again.to_json()["users"]
    assert list(first.users) == list(again.users)
    assert list(first.users) != list(other.users)


def test_the_service_mailbox_exists_without_changing_anyone_elses_id() -> None:
    store, tenant = demo()
    mailbox = store.find_user(SERVICE_MAILBOX_UPN)

    assert mailbox is not None
    assert mailbox["id"] == tenant.service_mailbox_id
    assert mailbox["mail"] == SERVICE_MAILBOX_UPN
    assert mailbox["employeeId"] is None
    # the ids the demo had before the mailbox was added (uuid5 of the seed and a stable key)
    assert tenant.ceo_id == "0a2f5c14-c659-50ef-b6a0-6257a7fe1a7d"
    assert store.users[tenant.ceo_id]["userPrincipalName"] == "femke.ritchie@contoso.com"


def test_users_n_adds_a_tenant_at_scale_spread_over_the_departments_with_stable_ids() -> None:
    store, demo = build_store(EmulatorConfig(seed="empty", extra_users=2_000))
    assert demo is None
    assert len(store.users) == 2_000
    spread = Counter(u["department"] for u in store.users.values())
    assert set(spread) == set(DEPARTMENTS)
    assert max(spread.values()) - min(spread.values()) <= 1
    again, _ = build_store(EmulatorConfig(seed="empty", extra_users=2_000))
    assert set(again.users) == set(store.users)
    with_demo, tenant = build_store(EmulatorConfig(seed="demo", extra_users=10))
    assert tenant is not None
    assert len(with_demo.users) == tenant.user_count + 10
    assert parse_args(["--users", "100000"]).users == 100_000
    with pytest.raises(ValueError, match="users must be 0 to 500,000"):
        EmulatorConfig(extra_users=-1)
