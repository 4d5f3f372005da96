"""Paging a group's members builds only the page asked for: a large group costs O(page) per page."""

from __future__ import annotations

from typing import Any

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.store import TenantStore


class CountingStore(TenantStore):
    """Counts the member objects it builds."""

    built = 0

    def directory_object(self, object_id: str) -> Any:
        self.built += 1
        return super().directory_object(object_id)


def test_a_page_of_a_large_group_builds_that_page_only_and_every_member_once_over_all_pages() -> None:
    store = CountingStore()
    group = store.add_group({"displayName": "big"})["id"]
    ids = [store.add_user({"userPrincipalName": f"u{n}@contoso.com"})["id"] for n in range(5000)]
    store.add_members(group, ids)
    members = store.member_pages(group)
    store.built = 0
    assert len(members) == 5000
    assert store.built == 0
    seen: list[JsonObject] = []
    for offset in range(0, len(members), 999):
        seen += members[offset : offset + 999]
    assert store.built == 5000  # each member once, not the group once per page
    assert [m["id"] for m in seen] == ids
    assert members[4999]["id"] == ids[-1]
