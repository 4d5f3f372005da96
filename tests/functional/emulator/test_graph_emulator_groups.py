"""Groups through msgraph-sdk: create with Graph's validation, read, filter, update, delete."""

from __future__ import annotations

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graph_emulator import BREAK_GLASS_GROUP, IT_PILOT_GROUP, EmulatorHandle

pytestmark = pytest.mark.functional


async def test_a_security_group_is_created_read_and_deleted(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    # GIVEN a valid security group
    wanted = Group(
        display_name="WaveGuard - Wave 2", mail_enabled=False, mail_nickname="wg-wave2", security_enabled=True
    )

    # WHEN it is created, read back and deleted
    created = await graph.groups.post(wanted)
    assert created is not None
    assert created.id
    fetched = await graph.groups.by_group_id(created.id).get()
    await graph.groups.by_group_id(created.id).delete()

    # THEN Graph's shape came back and the group is gone afterwards
    assert fetched is not None
    assert (fetched.display_name, fetched.mail_nickname, fetched.security_enabled) == (
        "WaveGuard - Wave 2",
        "wg-wave2",
        True,
    )
    assert fetched.group_types == []
    with pytest.raises(ODataError) as raised:
        await graph.groups.by_group_id(created.id).get()
    assert raised.value.response_status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"displayName": "x", "mailEnabled": False, "securityEnabled": True},
            "A value is required for property 'mailNickname' of resource 'Group'.",
        ),
        (
            {"mailEnabled": False, "mailNickname": "x", "securityEnabled": True},
            "A value is required for property 'displayName' of resource 'Group'.",
        ),
        (
            {"displayName": "x", "mailNickname": "x", "securityEnabled": True},
            "A value is required for property 'mailEnabled' of resource 'Group'.",
        ),
        (
            {"displayName": "x", "mailEnabled": True, "mailNickname": "x", "securityEnabled": True},
            "The service does not currently support writes of mail-enabled groups.",
        ),
        (
            {"displayName": "x", "mailEnabled": False, "mailNickname": "has space", "securityEnabled": True},
            "Invalid value specified for property 'mailNickname' of resource 'Group'.",
        ),
        (
            {"displayName": "x", "mailEnabled": "no", "mailNickname": "x", "securityEnabled": True},
            "Cannot convert the literal 'no' to the expected type 'Edm.Boolean'",
        ),
        (
            {
                "displayName": "x",
                "mailEnabled": False,
                "mailNickname": "x",
                "securityEnabled": True,
                "colour": "red",
            },
            "The property 'colour' does not exist on type 'microsoft.graph.group'.",
        ),
    ],
)
async def test_invalid_groups_are_refused_like_graph(
    emulator: EmulatorHandle, http: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    groups_before = len(emulator.store.groups)

    response = await http.post(f"{emulator.base_url}/groups", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)
    assert len(emulator.store.groups) == groups_before


async def test_sdk_sees_the_validation_error_as_odata_error(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.groups.post(Group(display_name="No nickname", mail_enabled=False, security_enabled=True))

    assert raised.value.response_status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "Request_BadRequest"
    assert (
        raised.value.error.message == "A value is required for property 'mailNickname' of resource 'Group'."
    )


async def test_body_that_is_not_json_is_refused(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{emulator.base_url}/groups", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Unable to read JSON request payload.")


async def test_groups_are_found_by_display_name(emulator: EmulatorHandle, graph: GraphServiceClient) -> None:
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters

    exact = await graph.groups.get(
        request_configuration=RequestConfiguration(
            query_parameters=query(filter=f"displayName eq '{BREAK_GLASS_GROUP}'")
        )
    )
    prefix = await graph.groups.get(
        request_configuration=RequestConfiguration(
            query_parameters=query(filter="startswith(displayName, 'it ')", select=["id", "displayName"])
        )
    )

    assert exact is not None
    assert [g.display_name for g in exact.value or []] == [BREAK_GLASS_GROUP]
    assert prefix is not None
    assert [g.display_name for g in prefix.value or []] == [IT_PILOT_GROUP]
    assert prefix.value is not None
    assert prefix.value[0].security_enabled is None


async def test_patch_updates_group_properties(emulator: EmulatorHandle, graph: GraphServiceClient) -> None:
    assert emulator.demo is not None
    group_id = emulator.demo.it_pilot_group_id

    await graph.groups.by_group_id(group_id).patch(Group(description="Wave 1: IT, enforced 2026-12-01"))
    fetched = await graph.groups.by_group_id(group_id).get()

    assert fetched is not None
    assert fetched.description == "Wave 1: IT, enforced 2026-12-01"
    assert fetched.display_name == IT_PILOT_GROUP


async def test_unknown_paths_and_methods_answer_like_graph(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    unknown_segment = await http.get(f"{emulator.base_url}/gadgets")
    wrong_method = await http.put(f"{emulator.base_url}/groups", json={})

    assert unknown_segment.status_code == 400
    assert unknown_segment.json()["error"]["message"] == "Resource not found for the segment 'gadgets'."
    assert wrong_method.status_code == 405
