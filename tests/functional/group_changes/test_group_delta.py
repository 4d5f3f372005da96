"""Delta query on one group against the Graph emulator: the first round, changes, deletion."""

from __future__ import annotations

import httpx
import pytest
from msgraph.graph_service_client import GraphServiceClient

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_settings
from shared.errors import PermanentError
from shared.graph import build_graph_client
from shared.group_changes.delta import read_group_delta
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional


@pytest.fixture
def client(emulator_server: EmulatorHandle) -> GraphServiceClient:
    emulator_server.reset()
    return build_graph_client(load_settings({"GRAPH_BASE_URL": emulator_server.base_url, **PLAN_SECRETS}))


def _admin(emulator: EmulatorHandle, method: str, path: str, body: object = None) -> dict[str, object]:
    return dict(httpx.request(method, f"{emulator.admin_url}{path}", json=body).raise_for_status().json())


def _user(emulator: EmulatorHandle, name: str) -> str:
    return str(_admin(emulator, "POST", "/users", {"userPrincipalName": f"{name}@contoso.com"})["id"])


async def test_the_first_round_then_each_change_then_the_deletion(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    ada, bob, cy = (_user(emulator_server, n) for n in ("ada.delta", "bob.delta", "cy.delta"))
    group = str(
        _admin(emulator_server, "POST", "/groups", {"displayName": "Delta probe", "members": [ada, bob]})[
            "id"
        ]
    )
    other = str(_admin(emulator_server, "POST", "/groups", {"displayName": "Another group"})["id"])
    graph = f"{emulator_server.base_url}/groups"

    # the first round: everyone in the group, and a link for next time
    first = await read_group_delta(client, group, None)
    assert (first.initial, first.added, first.removed, first.deleted) == (
        True,
        {ada, bob},
        frozenset(),
        False,
    )

    # nothing changed: nothing to report
    quiet = await read_group_delta(client, group, first.delta_link)
    assert (quiet.initial, quiet.added, quiet.removed) == (False, frozenset(), frozenset())

    # cy added, bob removed (through Graph), a change to another group: only this group's changes
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{cy}"}
    async with httpx.AsyncClient(headers=ADMIN_HEADERS) as http:
        (await http.post(f"{graph}/{group}/members/$ref", json=ref)).raise_for_status()
        (await http.delete(f"{graph}/{group}/members/{bob}/$ref")).raise_for_status()
        (
            await http.post(
                f"{graph}/{other}/members/$ref", json={"@odata.id": ref["@odata.id"].replace(cy, ada)}
            )
        )
    changed = await read_group_delta(client, group, quiet.delta_link)
    assert (changed.added, changed.removed) == ({cy}, {bob})

    # added and removed again between two reads: net, it left
    async with httpx.AsyncClient(headers=ADMIN_HEADERS) as http:
        (await http.delete(f"{graph}/{group}/members/{cy}/$ref")).raise_for_status()
    gone = await read_group_delta(client, group, changed.delta_link)
    assert (gone.added, gone.removed) == (frozenset(), {cy})

    # the group deleted
    async with httpx.AsyncClient(headers=ADMIN_HEADERS) as http:
        (await http.delete(f"{graph}/{group}")).raise_for_status()
    deleted = await read_group_delta(client, group, gone.delta_link)
    assert deleted.deleted


async def test_a_link_to_another_host_is_never_followed(client: GraphServiceClient) -> None:
    with pytest.raises(PermanentError, match="outside Graph's base URL"):
        await read_group_delta(client, "g", "https://attacker.example/v1.0/groups/delta?$deltatoken=x")


async def test_a_token_graph_never_issued_is_refused(
    client: GraphServiceClient, emulator_server: EmulatorHandle
) -> None:
    with pytest.raises(PermanentError):
        await read_group_delta(
            client, "g", f"{emulator_server.base_url}/groups/delta?$deltatoken=not-a-token"
        )
