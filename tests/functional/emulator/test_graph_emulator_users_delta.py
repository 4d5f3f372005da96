"""``GET /users/delta``: the first round pages every user, the delta link returns only what changed
since (each user once), ``$deltatoken=latest`` starts from now, and a foreign token is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional


async def _round(http: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], str, int]:
    """Every page from ``url``: the users, the delta link and how many requests it took."""
    users: list[dict[str, Any]] = []
    pages = 0
    while True:
        answer = (await http.get(url)).raise_for_status().json()
        pages += 1
        users += answer["value"]
        if "@odata.deltaLink" in answer:
            return users, answer["@odata.deltaLink"], pages
        url = answer["@odata.nextLink"]


async def test_the_first_round_pages_every_user_then_the_link_returns_only_changes(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    admin = emulator.admin_url
    people = [{"userPrincipalName": f"delta.{n}@contoso.com", "department": "Sales"} for n in range(250)]
    (await http.post(f"{admin}/users", json=people)).raise_for_status()
    first, link, pages = await _round(http, f"{emulator.base_url}/users/delta?$select=id,department,country")
    assert len(first) == len(emulator.store.users)
    assert pages == -(-len(first) // 200)  # 200 users a page
    assert set(first[0]) == {"id", "department", "country"}
    # nothing changed: one request, no users
    unchanged, _, pages = await _round(http, link)
    assert (unchanged, pages) == ([], 1)
    # a department move, a new hire and a second change of the same user
    moved = next(u["id"] for u in first if u["department"] == "Sales")
    (await http.patch(f"{admin}/users/{moved}", json={"department": "Finance"})).raise_for_status()
    (await http.post(f"{admin}/users", json={"userPrincipalName": "late@contoso.com"})).raise_for_status()
    (await http.patch(f"{admin}/users/{moved}", json={"country": "FR"})).raise_for_status()
    changed, link2, pages = await _round(http, link)
    assert pages == 1
    assert sorted(u.get("department") or "-" for u in changed) == ["-", "Finance"]
    assert next(u for u in changed if u["id"] == moved) == {
        "id": moved,
        "department": "Finance",
        "country": "FR",
    }
    # the new link starts after those changes; the old one still reads them (Graph keeps state)
    assert (await _round(http, link2))[0] == []
    assert len((await _round(http, link))[0]) == 2


async def test_latest_starts_from_now_and_a_foreign_token_is_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    admin = emulator.admin_url
    users, link, pages = await _round(
        http, f"{emulator.base_url}/users/delta?$deltatoken=latest&$select=id,jobTitle"
    )
    assert (users, pages) == ([], 1)
    someone = next(iter(emulator.store.users))
    (await http.patch(f"{admin}/users/{someone}", json={"jobTitle": "Auditor"})).raise_for_status()
    changed, _, _ = await _round(http, link)
    assert changed == [{"id": someone, "jobTitle": "Auditor"}]
    refused = await http.get(f"{emulator.base_url}/users/delta?$deltatoken=bm90LWEtdG9rZW4")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "syncStateNotFound"
    both = await http.get(f"{emulator.base_url}/users/delta?$deltatoken=latest&$skiptoken=x")
    assert both.status_code == 400


async def test_the_admin_patch_refuses_what_cannot_change(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    someone = next(iter(emulator.store.users))
    url = f"{emulator.admin_url}/users/{someone}"
    for body, named in (
        ({"userPrincipalName": "x@contoso.com"}, "userPrincipalName"),
        ({"shoeSize": 42}, "shoeSize"),
        ({}, "object"),
        ({"department": 5}, "department"),
        ({"country": {"code": "FR"}}, "country"),
    ):
        answer = await http.patch(url, json=body)
        assert answer.status_code == 400
        assert named in answer.json()["error"]["message"]
    assert (
        await http.patch(f"{emulator.admin_url}/users/nobody", json={"department": "IT"})
    ).status_code == 404
