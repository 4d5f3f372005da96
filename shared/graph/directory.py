"""Directory reads: users and groups by id, UPN or name, and group members, paged to the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import NotFoundError, PermanentError
from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.generated.models.group import Group
    from msgraph.generated.models.user import User
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["USER_FIELDS", "find_group", "find_user", "iter_group_member_ids", "iter_users", "odata_literal"]

# Graph v1.0 returns only a default set of user properties; WaveGuard asks for what it uses.
USER_FIELDS: tuple[str, ...] = (
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "employeeId",
    "department",
    "country",
    "usageLocation",
    "accountEnabled",
    "jobTitle",
)


def odata_literal(value: str) -> str:
    """A string as an OData literal for $filter: quoted, with embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


async def find_user(
    client: GraphServiceClient, id_or_upn: str, *, select: Sequence[str] = USER_FIELDS
) -> User | None:
    """The user with this object id or userPrincipalName, or None when there is none.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request (e.g. missing permission).
    """
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    params = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=list(select))
    config: Any = UserItemRequestBuilder.UserItemRequestBuilderGetRequestConfiguration(
        query_parameters=params
    )
    try:
        return await client.users.by_user_id(id_or_upn).get(request_configuration=config)
    except Exception as exc:
        err = to_waveguard_error(exc, operation="get user")
        if isinstance(err, NotFoundError):
            return None
        raise err from exc


async def find_group(
    client: GraphServiceClient, *, group_id: str | None = None, display_name: str | None = None
) -> Group | None:
    """The group with this id (preferred) or exact displayName, or None when there is none.

    Raises:
        ValueError: neither group_id nor display_name was given.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request, or several groups share the displayName.
    """
    if group_id:
        try:
            return await client.groups.by_group_id(group_id).get()
        except Exception as exc:
            err = to_waveguard_error(exc, operation="get group")
            if isinstance(err, NotFoundError):
                return None
            raise err from exc
    if not display_name:
        raise ValueError("find_group needs group_id or display_name")
    from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder

    params = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=f"displayName eq {odata_literal(display_name)}", top=2
    )
    config: Any = GroupsRequestBuilder.GroupsRequestBuilderGetRequestConfiguration(query_parameters=params)
    try:
        page = await client.groups.get(request_configuration=config)
    except Exception as exc:
        raise to_waveguard_error(exc, operation="find group") from exc
    groups = list(page.value or []) if page else []
    if len(groups) > 1:
        raise PermanentError(f"several groups are named {display_name!r}; give the group's id in the config")
    return groups[0] if groups else None


async def iter_users(
    client: GraphServiceClient,
    *,
    odata_filter: str | None = None,
    select: Sequence[str] = USER_FIELDS,
    page_size: int = 999,
) -> AsyncIterator[User]:
    """Every user (optionally filtered), following @odata.nextLink to the end.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=list(select), filter=odata_filter, top=page_size
    )
    config: Any = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(query_parameters=params)
    try:
        page = await client.users.get(request_configuration=config)
        while page is not None:
            for user in page.value or []:
                yield user
            if not page.odata_next_link:
                break
            page = await client.users.with_url(page.odata_next_link).get()
    except Exception as exc:
        raise to_waveguard_error(exc, operation="list users") from exc


async def iter_group_member_ids(client: GraphServiceClient, group_id: str) -> AsyncIterator[str]:
    """The object id of every direct member of a group, paged to the end.

    Raises:
        NotFoundError: the group does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
    """
    from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder

    params = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(select=["id"], top=999)
    config: Any = MembersRequestBuilder.MembersRequestBuilderGetRequestConfiguration(query_parameters=params)
    members = client.groups.by_group_id(group_id).members
    try:
        page = await members.get(request_configuration=config)
        while page is not None:
            for obj in page.value or []:
                if obj.id:
                    yield obj.id
            if not page.odata_next_link:
                break
            page = await members.with_url(page.odata_next_link).get()
    except Exception as exc:
        raise to_waveguard_error(exc, operation="list group members") from exc
