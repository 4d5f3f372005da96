"""The onboarding worker's user and group reads as raw JSON: no msgraph model is parsed.

The first model msgraph parses in a process costs about 1.5 s (it imports some 1,300 classes) and
each later one 8-10 ms; a hire reads a user, its manager and its groups, and needs a handful of
fields of each. These reads go through the same client (auth, retries, the break-glass guard) and
answer plain dicts, as Graph sent them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

from shared.errors import PermanentError
from shared.graph.client import get_json
from shared.graph.directory import USER_FIELDS, odata_literal

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "find_group_id_json",
    "find_user_json",
    "find_user_json_by_employee_id",
    "get_manager_json",
    "group_pairs",
    "member_of_groups_json",
    "query",
    "segment",
]

_USER_TYPE: Final = "#microsoft.graph.user"
_GROUP_TYPE: Final = "#microsoft.graph.group"
_MAX_PAGES: Final = 50


def group_pairs(page: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The groups of one ``memberOf`` page as ``(id, displayName)`` (roles and others left out)."""
    pairs: list[tuple[str, str | None]] = []
    for item in page.get("value") or []:
        if isinstance(item, dict) and item.get("@odata.type") == _GROUP_TYPE and item.get("id"):
            name = item.get("displayName")
            pairs.append((str(item["id"]), name if isinstance(name, str) else None))
    return pairs


def query(**options: str) -> str:
    """OData system query options (``select=...`` → ``$select=...``) as a query string."""
    return urlencode({f"${name}": value for name, value in options.items()}, quote_via=quote, safe="$,'")


def segment(value: str) -> str:
    """An id or UPN as one path segment (a guest's ``#EXT#``, a ``/`` or ``%`` stay inside it)."""
    return quote(value, safe="@")


async def find_user_json(
    client: GraphServiceClient, id_or_upn: str, *, select: Sequence[str] = USER_FIELDS
) -> dict[str, Any] | None:
    """The user with this object id or userPrincipalName, or None when there is none.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    user = await get_json(client, f"/users/{segment(id_or_upn)}?{query(select=','.join(select))}")
    return user if user and user.get("id") else None


async def find_user_json_by_employee_id(
    client: GraphServiceClient, employee_id: str, *, select: Sequence[str] = USER_FIELDS
) -> dict[str, Any] | None:
    """The one user whose ``employeeId`` is ``employee_id``, or None.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request, or several users share the employeeId.
    """
    options = query(filter=f"employeeId eq {odata_literal(employee_id)}", select=",".join(select), top="2")
    page = await get_json(client, f"/users?{options}") or {}
    found = [u for u in page.get("value") or [] if isinstance(u, dict) and u.get("id")]
    if len(found) > 1 or (found and page.get("@odata.nextLink")):
        raise PermanentError("several users share one employeeId; fix the directory", employee_id=employee_id)
    return found[0] if found else None


async def get_manager_json(
    client: GraphServiceClient, user_id: str, *, select: Sequence[str] = USER_FIELDS
) -> dict[str, Any] | None:
    """The user's manager when it is a user, or None when none is set.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    manager = await get_json(client, f"/users/{segment(user_id)}/manager?{query(select=','.join(select))}")
    if not manager or not manager.get("id") or manager.get("@odata.type", _USER_TYPE) != _USER_TYPE:
        return None
    return manager


async def member_of_groups_json(client: GraphServiceClient, user_id: str) -> list[tuple[str, str | None]]:
    """The groups the user is a direct member of, as ``(id, displayName)`` pairs.

    Raises:
        NotFoundError: the user does not exist.
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    from shared.errors import NotFoundError

    base = str(client.request_adapter.base_url).rstrip("/")
    path: str | None = f"/users/{segment(user_id)}/memberOf"
    pairs: list[tuple[str, str | None]] = []
    for _ in range(_MAX_PAGES):
        if path is None:
            break
        page = await get_json(client, path)
        if page is None:
            raise NotFoundError("the user does not exist", user_id=user_id)
        pairs += group_pairs(page)
        link = page.get("@odata.nextLink")
        if link is not None and not (isinstance(link, str) and link.startswith(base)):
            raise PermanentError("Graph's next page of memberOf is not under its base URL", user_id=user_id)
        path = link[len(base) :] if isinstance(link, str) else None
    return pairs


async def find_group_id_json(
    client: GraphServiceClient, *, group_id: str | None, display_name: str | None
) -> str | None:
    """The id of the group with this id (preferred) or exact displayName, or None when none exists.

    Raises:
        ValueError: neither group_id nor display_name was given.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request, or several groups share the displayName.
    """
    if group_id:
        group = await get_json(client, f"/groups/{segment(group_id)}?{query(select='id')}")
        return str(group["id"]) if group and group.get("id") else None
    if not display_name:
        raise ValueError("find_group_id_json needs group_id or display_name")
    options = query(filter=f"displayName eq {odata_literal(display_name)}", select="id", top="2")
    page = await get_json(client, f"/groups?{options}") or {}
    found = [g for g in page.get("value") or [] if isinstance(g, dict) and g.get("id")]
    if len(found) > 1:
        raise PermanentError(f"several groups are named {display_name!r}; give the group's id in the config")
    return str(found[0]["id"]) if found else None
