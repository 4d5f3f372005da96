"""Group membership through msgraph-sdk: $ref adds and removes, members@odata.bind all or nothing."""

from __future__ import annotations

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional

GRAPH = "https://graph.microsoft.com/v1.0"
ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: 'members'."
)


async def new_group(
    http: httpx.AsyncClient, emulator: EmulatorHandle, name: str = "WaveGuard - Wave 3"
) -> str:
    """A fresh empty security group, made through the admin API (it costs no write budget)."""
    response = await http.post(f"{emulator.admin_url}/groups", json={"displayName": name})
    response.raise_for_status()
    return str(response.json()["id"])


def staff_ids(emulator: EmulatorHandle, department: str, count: int) -> list[str]:
    ids = [str(u["id"]) for u in emulator.store.users.values() if u["department"] == department]
    return ids[:count]


async def member_ids(graph: GraphServiceClient, group_id: str) -> set[str]:
    query = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(select=["id"], top=999)
    page = await graph.groups.by_group_id(group_id).members.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    assert page is not None
    assert page.odata_next_link is None
    return {str(member.id) for member in page.value or []}


async def test_adding_a_member_twice_is_graphs_400(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN an empty group and a user
    group_id = await new_group(http, emulator)
    user_id = staff_ids(emulator, "Sales", 1)[0]
    reference = ReferenceCreate(odata_id=f"{GRAPH}/directoryObjects/{user_id}")

    # WHEN the user is added, then added again
    await graph.groups.by_group_id(group_id).members.ref.post(reference)
    with pytest.raises(ODataError) as raised:
        await graph.groups.by_group_id(group_id).members.ref.post(reference)

    # THEN the second add is Graph's 400 and the user is a member once
    assert raised.value.response_status_code == 400
    assert raised.value.error is not None
    assert (raised.value.error.code, raised.value.error.message) == ("Request_BadRequest", ALREADY_MEMBER)
    assert await member_ids(graph, group_id) == {user_id}


async def test_members_are_listed_as_typed_users(emulator: EmulatorHandle, graph: GraphServiceClient) -> None:
    assert emulator.demo is not None

    page = await graph.groups.by_group_id(emulator.demo.it_pilot_group_id).members.get()

    assert page is not None
    assert page.value
    assert all(isinstance(member, User) for member in page.value)
    assert len(page.value) == emulator.demo.department_counts["IT"]


async def test_a_member_is_removed_by_ref_and_a_non_member_is_404(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    assert emulator.demo is not None
    group_id = emulator.demo.it_pilot_group_id
    member = staff_ids(emulator, "IT", 1)[0]
    outsider = staff_ids(emulator, "Legal", 1)[0]

    await graph.groups.by_group_id(group_id).members.by_directory_object_id(member).ref.delete()
    with pytest.raises(ODataError) as raised:
        await graph.groups.by_group_id(group_id).members.by_directory_object_id(outsider).ref.delete()

    assert member not in await member_ids(graph, group_id)
    assert raised.value.response_status_code == 404


async def test_unknown_object_reference_is_404(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    group_id = await new_group(http, emulator)
    ghost = "00000000-0000-0000-0000-000000000001"

    with pytest.raises(ODataError) as raised:
        await graph.groups.by_group_id(group_id).members.ref.post(
            ReferenceCreate(odata_id=f"{GRAPH}/directoryObjects/{ghost}")
        )

    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert ghost in str(raised.value.error.message)


async def test_bind_adds_twenty_members_in_one_patch(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN an empty group and 20 users, referenced in every accepted URL form
    group_id = await new_group(http, emulator)
    users = staff_ids(emulator, "Engineering", 20)
    urls = [f"{GRAPH}/directoryObjects/{uid}" for uid in users[:10]]
    urls += [f"{GRAPH}/users/{uid}" for uid in users[10:15]]
    urls += [f"{emulator.base_url}/directoryObjects/{uid}" for uid in users[15:]]

    # WHEN they are bound in one PATCH
    await graph.groups.by_group_id(group_id).patch(Group(additional_data={"members@odata.bind": urls}))

    # THEN all 20 are members
    assert await member_ids(graph, group_id) == set(users)


async def test_bind_of_twenty_one_is_refused_and_adds_nobody(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    group_id = await new_group(http, emulator)
    urls = [f"{GRAPH}/directoryObjects/{uid}" for uid in staff_ids(emulator, "Engineering", 21)]

    with pytest.raises(ODataError) as raised:
        await graph.groups.by_group_id(group_id).patch(Group(additional_data={"members@odata.bind": urls}))

    assert raised.value.response_status_code == 400
    assert "more than 20" in str(raised.value.error.message if raised.value.error else "")
    assert await member_ids(graph, group_id) == set()


async def test_bind_is_all_or_nothing(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN a group that already holds one user
    group_id = await new_group(http, emulator)
    users = staff_ids(emulator, "Marketing", 6)
    await graph.groups.by_group_id(group_id).members.ref.post(
        ReferenceCreate(odata_id=f"{GRAPH}/directoryObjects/{users[0]}")
    )
    ghost = "00000000-0000-0000-0000-00000000dead"

    # WHEN a bind holds one unknown id, and another bind holds the existing member
    with_unknown = [f"{GRAPH}/directoryObjects/{uid}" for uid in [*users[1:], ghost]]
    with_existing = [f"{GRAPH}/directoryObjects/{uid}" for uid in users]
    with pytest.raises(ODataError) as unknown:
        await graph.groups.by_group_id(group_id).patch(
            Group(additional_data={"members@odata.bind": with_unknown})
        )
    with pytest.raises(ODataError) as existing:
        await graph.groups.by_group_id(group_id).patch(
            Group(description="must not stick", additional_data={"members@odata.bind": with_existing})
        )

    # THEN neither added anyone (nor changed the group)
    assert unknown.value.response_status_code == 404
    assert existing.value.response_status_code == 400
    assert existing.value.error is not None
    assert existing.value.error.message == ALREADY_MEMBER
    assert await member_ids(graph, group_id) == {users[0]}
    assert emulator.store.groups[group_id]["description"] is None


async def test_malformed_reference_is_named_in_the_error(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    group_id = await new_group(http, emulator)

    response = await http.post(
        f"{emulator.base_url}/groups/{group_id}/members/$ref",
        json={"@odata.id": "https://evil.example/users/x"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid object identifier 'https://evil.example/users/x'."
