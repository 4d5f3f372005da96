"""Directory reads through WaveGuard's Graph client against the emulator (real HTTP, msgraph-sdk)."""

from __future__ import annotations

import httpx
import pytest
from msgraph.graph_service_client import GraphServiceClient

from local.graph_emulator import BREAK_GLASS_GROUP, BREAK_GLASS_UPNS, DEMO_USER_COUNT, EmulatorHandle
from shared.config import load_settings
from shared.errors import PermanentError
from shared.graph import build_graph_client
from shared.graph.directory import find_group, find_user, iter_group_member_ids, iter_users
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional


@pytest.fixture
def client(emulator_server: EmulatorHandle) -> GraphServiceClient:
    emulator_server.reset()
    return build_graph_client(load_settings({"GRAPH_BASE_URL": emulator_server.base_url, **PLAN_SECRETS}))


async def test_find_user_by_upn_and_by_id_with_the_fields_waveguard_uses(client: GraphServiceClient) -> None:
    by_upn = await find_user(client, BREAK_GLASS_UPNS[0])
    assert by_upn is not None
    assert by_upn.user_principal_name == BREAK_GLASS_UPNS[0]
    by_id = await find_user(client, str(by_upn.id))
    assert by_id is not None
    assert by_id.id == by_upn.id
    some = [u async for u in iter_users(client, odata_filter="department eq 'Finance'")]
    assert some
    assert all(u.department == "Finance" for u in some)
    assert all(u.employee_id for u in some)


async def test_unknown_user_is_none_not_an_error(client: GraphServiceClient) -> None:
    assert await find_user(client, "nobody@contoso.com") is None


async def test_list_users_follows_paging_to_the_end(client: GraphServiceClient) -> None:
    users = [u async for u in iter_users(client, select=("id",), page_size=50)]
    assert len(users) == DEMO_USER_COUNT
    assert len({u.id for u in users}) == DEMO_USER_COUNT


async def test_find_group_by_name_and_members(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    group = await find_group(client, display_name=BREAK_GLASS_GROUP)
    assert group is not None
    assert group.id == emulator_server.demo.break_glass_group_id
    members = {m async for m in iter_group_member_ids(client, str(group.id))}
    assert members == set(emulator_server.demo.break_glass_ids)
    assert await find_group(client, display_name="No such group") is None
    assert await find_group(client, group_id="00000000-0000-0000-0000-000000000000") is None


async def test_two_groups_with_one_name_is_a_clear_permanent_error(
    client, emulator_server: EmulatorHandle
) -> None:
    body = {"displayName": "Twin", "mailEnabled": False, "mailNickname": "twin", "securityEnabled": True}
    async with httpx.AsyncClient() as http:
        for _ in range(2):
            assert (await http.post(f"{emulator_server.base_url}/groups", json=body)).status_code == 201
    with pytest.raises(PermanentError, match="several groups are named 'Twin'"):
        await find_group(client, display_name="Twin")
