"""Provisioning lag: users that appear in the directory only after a (time-scaled) delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from local.graph_emulator import EmulatorHandle
from tests.waiting import wait_for_async

pytestmark = pytest.mark.functional

NEW_HIRE = {
    "userPrincipalName": "nova.starter@contoso.com",
    "employeeId": "E9001",
    "department": "IT",
    "manager": "femke.ritchie@contoso.com",
}


async def employee(graph: GraphServiceClient, employee_id: str) -> list[str]:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        filter=f"employeeId eq '{employee_id}'", select=["id", "employeeId"]
    )
    config = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(query_parameters=query)
    page = await graph.users.get(request_configuration=config)
    assert page is not None
    return [u.id or "" for u in page.value or []]


async def test_a_lagging_user_is_invisible_until_provisioned_then_appears_with_their_manager(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN a hire HR provisioning will create in an hour
    created = await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": 3600})
    assert created.status_code == 201
    user_id = created.json()["id"]

    # WHEN WaveGuard looks for them right away
    # THEN the directory does not know them yet, but the admin API lists them as pending
    assert await employee(graph, "E9001") == []
    with pytest.raises(ODataError) as missing:
        await graph.users.by_user_id(user_id).get()
    assert missing.value.response_status_code == 404
    pending = (await http.get(f"{emulator.admin_url}/pending-users")).json()
    assert [p["id"] for p in pending["value"]] == [user_id]

    # AND once provisioning catches up they are there, with their manager
    provisioned = await http.post(f"{emulator.admin_url}/pending-users/{user_id}/provision")
    assert provisioned.status_code == 200
    assert provisioned.json()["id"] == user_id
    assert await employee(graph, "E9001") == [user_id]
    manager = await graph.users.by_user_id(user_id).manager.get()
    assert manager is not None
    assert manager.id == emulator.store.find_user("femke.ritchie@contoso.com")["id"]  # type: ignore[index]
    assert (await http.get(f"{emulator.admin_url}/pending-users")).json()["count"] == 0


async def test_the_delay_is_divided_by_the_time_scale(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a clock 60 times faster
    emulator.reset(timeScale=60)
    before = datetime.now(UTC)

    # WHEN a hire is held back for an emulated hour
    created = await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": 3600})

    # THEN they are due one real minute after they were created (the lag is not waited for here)
    visible_at = datetime.fromisoformat(created.json()["visibleAt"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=60) <= visible_at <= datetime.now(UTC) + timedelta(seconds=60)


async def test_a_user_appears_by_themselves_once_their_delay_has_passed(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a hire due in a tenth of a second
    await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": 0.1})

    # WHEN Graph is asked for them until they appear / THEN they do, with no admin call
    url = f"{emulator.base_url}/users/{NEW_HIRE['userPrincipalName']}"
    statuses: list[int] = []

    async def visible() -> bool:
        statuses.append((await http.get(url)).status_code)
        return statuses[-1] != 404

    await wait_for_async("the hire to become visible", visible, within=15)
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {404}


async def test_provisioning_a_user_that_is_not_pending_is_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{emulator.admin_url}/pending-users/femke.ritchie@contoso.com/provision")

    assert response.status_code == 400
    assert "no pending user" in response.json()["error"]["message"]


async def test_a_pending_user_holds_its_upn(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": 3600})

    again = await http.post(
        f"{emulator.admin_url}/users", json={"userPrincipalName": NEW_HIRE["userPrincipalName"]}
    )

    assert again.status_code == 400
    assert "userPrincipalName already exists" in again.json()["error"]["message"]


@pytest.mark.parametrize("delay", [-1, "soon", True])
async def test_a_bad_delay_is_refused_naming_the_field(
    emulator: EmulatorHandle, http: httpx.AsyncClient, delay: object
) -> None:
    response = await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": delay})

    assert response.status_code == 400
    assert "users[0].visibleAfterSeconds" in response.json()["error"]["message"]
    assert (await http.get(f"{emulator.admin_url}/pending-users")).json()["count"] == 0


async def test_zero_delay_is_visible_at_once(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await http.post(f"{emulator.admin_url}/users", json={**NEW_HIRE, "visibleAfterSeconds": 0})

    response = await http.get(f"{emulator.base_url}/users/{NEW_HIRE['userPrincipalName']}")

    assert response.status_code == 200
