"""shared.graph TAP, mail and group writes against the emulator (real HTTP through msgraph-sdk)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from msgraph.graph_service_client import GraphServiceClient

from local.graph_emulator import SERVICE_MAILBOX_UPN, EmulatorHandle
from shared.config import load_settings
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph import build_graph_client
from shared.graph.account import read_account_facts
from shared.graph.directory import find_group
from shared.graph.groups import add_member, create_security_group, delete_group, remove_member
from shared.graph.hire_reads import find_and_read_hire, read_hire
from shared.graph.hire_writes import send_draft_and_add_member
from shared.graph.mail import MailMessage, create_draft, message_state, send_mail
from shared.graph.tap import create_tap, delete_tap, list_taps
from shared.graph.users_json import find_user_json_by_employee_id, get_manager_json, member_of_groups_json
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional


@pytest.fixture
def client(emulator_server: EmulatorHandle) -> GraphServiceClient:
    emulator_server.reset()
    return build_graph_client(load_settings({"GRAPH_BASE_URL": emulator_server.base_url, **PLAN_SECRETS}))


@pytest.fixture
def someone(emulator_server: EmulatorHandle) -> str:
    return str(emulator_server.demo.head_ids["Sales"])  # type: ignore[union-attr]


async def test_adding_an_existing_member_is_success_and_removing_twice_too(
    client: GraphServiceClient, someone: str
) -> None:
    group_id = await create_security_group(client, "WaveGuard - Test wave", description="test")
    assert await add_member(client, group_id, someone) is True
    assert await add_member(client, group_id, someone) is False
    assert (group_id, "WaveGuard - Test wave") in await member_of_groups_json(client, someone)
    assert await remove_member(client, group_id, someone) is True
    assert await remove_member(client, group_id, someone) is False
    group = await find_group(client, group_id=group_id)
    assert group is not None
    assert (group.security_enabled, group.mail_enabled) == (True, False)


async def test_the_draft_is_sent_and_the_member_added_in_one_batch(
    client: GraphServiceClient, someone: str, emulator_server: EmulatorHandle
) -> None:
    # GIVEN a saved draft and a wave group
    group_id = await create_security_group(client, "WaveGuard - Batch wave", description="test")
    message = MailMessage(subject="TAP", body="Temporary Access Pass: abc", to=["it@contoso.com"])
    draft_id = await create_draft(client, SERVICE_MAILBOX_UPN, message, tag="env-1")
    # WHEN both go to Graph in one $batch
    outcome = await send_draft_and_add_member(client, SERVICE_MAILBOX_UPN, draft_id, group_id, someone)
    # THEN the e-mail is out under its immutable id and the member is in the group
    assert (outcome.sent, outcome.joined) == (None, True)
    assert await message_state(client, SERVICE_MAILBOX_UPN, draft_id) == "sent"
    assert (group_id, "WaveGuard - Batch wave") in await member_of_groups_json(client, someone)
    async with httpx.AsyncClient() as http:
        outbox = (await http.get(f"{emulator_server.admin_url}/outbox")).json()["value"]
    assert [m["id"] for m in outbox] == [draft_id]
    # AND a repeat finds the member there (success) and the draft no longer a draft to send
    again = await send_draft_and_add_member(client, SERVICE_MAILBOX_UPN, draft_id, group_id, someone)
    assert again.joined is False
    assert again.sent is not None
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{emulator_server.admin_url}/outbox")).json()["count"] == 1


async def test_adding_to_a_missing_group_is_not_found(client: GraphServiceClient, someone: str) -> None:
    with pytest.raises(NotFoundError):
        await add_member(client, "00000000-0000-0000-0000-000000000000", someone)


async def test_a_new_tap_replaces_the_old_and_delete_is_idempotent(
    client: GraphServiceClient, someone: str, emulator_server: EmulatorHandle
) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    first = await create_tap(client, someone, lifetime_minutes=60, is_usable_once=True, start_at=start)
    second = await create_tap(client, someone, lifetime_minutes=120, is_usable_once=False)
    assert first.value != second.value
    assert first.value not in repr(first)
    [listed] = await list_taps(client, someone)
    assert (listed.id, listed.lifetime_minutes, listed.is_usable_once) == (second.method.id, 120, False)
    assert await delete_tap(client, someone, listed.id) is True
    assert await delete_tap(client, someone, listed.id) is False
    assert await list_taps(client, someone) == []


async def test_a_lifetime_graph_refuses_is_a_permanent_error_without_the_request(
    client: GraphServiceClient, someone: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await create_tap(client, someone, lifetime_minutes=5, is_usable_once=True)
    assert caught.value.__cause__ is None


async def test_send_mail_lands_in_the_outbox(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    message = MailMessage(subject="Hello", body="Body text", to=["ada.wilson@contoso.com"])
    await send_mail(client, SERVICE_MAILBOX_UPN, message)
    async with httpx.AsyncClient() as http:
        outbox = (await http.get(f"{emulator_server.admin_url}/outbox")).json()["value"]
    assert [(m["from"], m["subject"], m["body"]) for m in outbox] == [
        (SERVICE_MAILBOX_UPN, "Hello", "Body text")
    ]
    with pytest.raises(NotFoundError):
        await send_mail(client, "nobody@contoso.com", message)


async def test_user_by_employee_id_and_manager(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    user = await find_user_json_by_employee_id(client, "E1001")
    assert user is not None
    assert user["employeeId"] == "E1001"
    manager = await get_manager_json(client, str(user["id"]))
    assert manager is not None
    assert manager["id"]
    assert await find_user_json_by_employee_id(client, "E-none") is None
    assert await get_manager_json(client, str(emulator_server.demo.ceo_id)) is None  # type: ignore[union-attr]


async def test_deleting_a_group_twice_is_success_both_times(client: GraphServiceClient) -> None:
    group_id = await create_security_group(client, "WaveGuard - Duplicate wave", description="test")
    assert await delete_group(client, group_id) is True
    assert await delete_group(client, group_id) is False
    assert await find_group(client, group_id=group_id) is None


async def test_the_hire_reads_in_one_batch_are_the_reads_one_by_one(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    user = await find_user_json_by_employee_id(client, "E1001")
    assert user is not None
    uid = str(user["id"])
    # a user in more groups than Graph's first page holds: that list is read again, paged to the end
    for n in range(101):
        await add_member(client, await create_security_group(client, f"Many {n}", description="t"), uid)
    async with httpx.AsyncClient() as http:
        await http.delete(f"{emulator_server.admin_url}/requests")
        found = await read_hire(client, uid)
        log = (await http.get(f"{emulator_server.admin_url}/requests")).json()["value"]
    alone = [r["path"] for r in log if not r.get("batchId")]
    assert alone[0] == "/v1.0/$batch"
    assert sum(1 for r in log if r.get("batchId")) == 4  # the four reads, in one round trip
    assert all(p.endswith("/memberOf") for p in alone[1:])  # then only the long list, on its own
    assert len(alone) > 1
    assert {name for _, name in found.groups} >= {f"Many {n}" for n in range(101)}
    assert found.groups == await member_of_groups_json(client, uid)
    assert found.facts == await read_account_facts(client, uid)
    manager = await get_manager_json(client, uid)
    assert found.manager is not None
    assert manager is not None
    assert found.manager["id"] == manager["id"]
    ceo = await read_hire(client, str(emulator_server.demo.ceo_id))  # type: ignore[union-attr]
    assert ceo.manager is None
    with pytest.raises(NotFoundError):
        await read_hire(client, "00000000-0000-0000-0000-000000000000")


async def test_the_hire_is_found_and_read_in_one_batch_when_its_employee_id_and_upn_agree(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    user = await find_user_json_by_employee_id(client, "E1001")
    assert user is not None
    upn, uid = str(user["userPrincipalName"]), str(user["id"])
    async with httpx.AsyncClient() as http:
        await http.delete(f"{emulator_server.admin_url}/requests")
        located = await find_and_read_hire(client, "E1001", upn)
        log = (await http.get(f"{emulator_server.admin_url}/requests")).json()["value"]
    # one round trip: the look-up by employeeId next to the four reads by UPN
    assert [r["path"] for r in log if not r.get("batchId")] == ["/v1.0/$batch"]
    assert sum(1 for r in log if r.get("batchId")) == 5
    assert located is not None
    found_user, reads = located
    assert (found_user["id"], found_user["employeeId"]) == (uid, "E1001")
    # the same facts as the reads by id
    assert reads == await read_hire(client, uid)


async def test_an_employee_id_and_upn_naming_two_accounts_take_the_employee_id_and_read_it_by_id(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    # GIVEN HR names an employeeId and a UPN that belong to two different accounts
    employee = await find_user_json_by_employee_id(client, "E1001")
    other = await find_user_json_by_employee_id(client, "E1002")
    assert employee is not None
    assert other is not None
    # WHEN the hire is found
    located = await find_and_read_hire(client, "E1001", str(other["userPrincipalName"]))
    # THEN it is the employeeId's account, and its facts are its own (read again by id), never the UPN's
    assert located is not None
    assert located[0]["id"] == employee["id"]
    assert located[1] == await read_hire(client, str(employee["id"]))
    # AND an employeeId no one has falls back to the UPN; neither found is None
    by_upn = await find_and_read_hire(client, "E-none", str(other["userPrincipalName"]))
    assert by_upn is not None
    assert by_upn[0]["id"] == other["id"]
    assert await find_and_read_hire(client, "E-none", "nobody@contoso.com") is None
    assert await find_and_read_hire(client, None, "nobody@contoso.com") is None


async def test_reads_by_upn_that_fail_never_fail_a_hire_its_employee_id_found(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    # GIVEN Graph refuses every read by the hire's UPN (a UPN being renamed, a replica's refusal)
    employee = await find_user_json_by_employee_id(client, "E1001")
    assert employee is not None
    upn = re.escape(str(employee["userPrincipalName"]))
    fault = {"status": 403, "count": 20, "method": "GET", "path": f"/users/{upn}(/|$)", "code": "Forbidden"}
    async with httpx.AsyncClient() as http:
        (await http.post(f"{emulator_server.admin_url}/faults", json=fault)).raise_for_status()
        # WHEN the hire is found
        located = await find_and_read_hire(client, "E1001", str(employee["userPrincipalName"]))
        await http.delete(f"{emulator_server.admin_url}/faults")
    # THEN the employeeId's account is read again by id, as if the UPN had named another account
    assert located is not None
    assert located[0]["id"] == employee["id"]
    assert located[1] == await read_hire(client, str(employee["id"]))


async def test_an_employee_id_two_accounts_share_is_refused(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    twins = [{"userPrincipalName": f"twin{n}@contoso.com", "employeeId": "E-TWIN"} for n in (1, 2)]
    async with httpx.AsyncClient() as http:
        (await http.post(f"{emulator_server.admin_url}/users", json=twins)).raise_for_status()
    with pytest.raises(PermanentError, match="share one employeeId"):
        await find_and_read_hire(client, "E-TWIN", "twin1@contoso.com")


async def test_a_throttled_item_is_read_again_and_one_that_stays_throttled_fails_the_read(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    user = await find_user_json_by_employee_id(client, "E1001")
    assert user is not None
    uid = str(user["id"])
    async with httpx.AsyncClient() as http:
        # throttled twice: the item alone is sent again after its Retry-After, and the read succeeds
        fault = {"status": 429, "count": 2, "retryAfter": 0.2, "path": "/authentication/methods$"}
        (await http.post(f"{emulator_server.admin_url}/faults", json=fault)).raise_for_status()
        await http.delete(f"{emulator_server.admin_url}/requests")
        assert (await read_hire(client, uid)).facts.created_at is not None
        log = (await http.get(f"{emulator_server.admin_url}/requests")).json()["value"]
        batches = [r for r in log if r["path"] == "/v1.0/$batch"]
        methods = [r for r in log if r["path"].endswith("/authentication/methods")]
        assert (len(batches), len(methods)) == (3, 3)  # 5 items, then the methods item twice
        # throttled for longer than the rounds: the whole read fails, retryable
        fault = {"status": 429, "count": 10, "retryAfter": 0.2, "path": "/authentication/methods$"}
        (await http.post(f"{emulator_server.admin_url}/faults", json=fault)).raise_for_status()
        with pytest.raises(RetryableError) as caught:
            await read_hire(client, uid)
        assert caught.value.retry_after == 0.2
        await http.delete(f"{emulator_server.admin_url}/faults")


async def test_a_user_found_whose_methods_answer_404_is_read_again_never_taken_as_having_none(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    user = await find_user_json_by_employee_id(client, "E1001")
    assert user is not None
    fault = {
        "status": 404,
        "count": 1,
        "path": "/authentication/methods$",
        "code": "Request_ResourceNotFound",
    }
    async with httpx.AsyncClient() as http:
        (await http.post(f"{emulator_server.admin_url}/faults", json=fault)).raise_for_status()
    with pytest.raises(RetryableError):
        await read_hire(client, str(user["id"]))
