"""Read one group's membership changes with Graph's delta query, from the last stored delta link.

``read_group_delta(graph, group_id, delta_link)``: with no link, the group's whole membership (the
first round); with one, what changed since. Pages (``@odata.nextLink``) are followed; the answer's
``@odata.deltaLink`` is what to store for next time. Links are followed only on Graph's own base URL
(a link pointing elsewhere is refused, never sent a token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from shared.errors import InvalidPayloadError, PermanentError

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["GroupDelta", "read_group_delta"]

_MAX_PAGES: Final = 1000


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """What changed in one group since the last delta link (everything, on the first round)."""

    group_id: str
    added: frozenset[str]
    removed: frozenset[str]
    deleted: bool
    delta_link: str
    initial: bool


async def read_group_delta(graph: GraphServiceClient, group_id: str, delta_link: str | None) -> GroupDelta:
    """The group's membership delta since ``delta_link`` (None: the first round).

    Raises:
        RetryableError: Graph failed transiently.
        PermanentError: Graph refused the read, or sent a link to another host.
        InvalidPayloadError: the answer is not a delta page.
    """
    from shared.graph.client import get_json

    base = str(graph.request_adapter.base_url).rstrip("/")
    path = (
        _relative(base, delta_link)
        if delta_link
        else f"/groups/delta?$filter=id eq '{quote(group_id)}'&$select=members"
    )
    added: set[str] = set()
    removed: set[str] = set()
    deleted = False
    present = False
    for _ in range(_MAX_PAGES):
        page = await get_json(graph, path)
        if page is None:
            raise PermanentError(f"groups/delta answered 404 for group {group_id}", group_id=group_id)
        for entry in _entries(page):
            if str(entry.get("id") or "").lower() != group_id.lower():
                continue
            present = True
            if "@removed" in entry:
                deleted = True
                continue
            for member in entry.get("members@delta") or []:
                if isinstance(member, dict) and isinstance(member.get("id"), str):
                    (removed if "@removed" in member else added).add(member["id"])
                    (added if "@removed" in member else removed).discard(member["id"])
        if isinstance(page.get("@odata.deltaLink"), str):
            # A first read that does not return the group at all: it no longer exists.
            gone = deleted or (delta_link is None and not present)
            return GroupDelta(
                group_id,
                frozenset(added),
                frozenset(removed),
                gone,
                page["@odata.deltaLink"],
                delta_link is None,
            )
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str):
            raise InvalidPayloadError.for_field(
                "@odata.deltaLink", "a delta page has neither a next nor a delta link"
            )
        path = _relative(base, next_link)
    raise PermanentError(
        f"groups/delta for group {group_id} did not end after {_MAX_PAGES} pages", group_id=group_id
    )


def _entries(page: dict[str, Any]) -> list[dict[str, Any]]:
    value = page.get("value")
    if not isinstance(value, list):
        raise InvalidPayloadError.for_field("value", "a delta page must carry a list")
    return [entry for entry in value if isinstance(entry, dict)]


def _relative(base: str, link: str) -> str:
    if not link.startswith(base + "/"):
        raise PermanentError(
            "a delta link points outside Graph's base URL; it is not followed", link_host=link[:60]
        )
    return link[len(base) :]
