"""Reads the onboarding worker needs: a user by employeeId, a user's manager, a user's groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import NotFoundError, PermanentError
from shared.graph.directory import USER_FIELDS, iter_users, odata_literal
from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.generated.models.user import User
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["find_user_by_employee_id", "get_manager", "member_of_groups"]


async def find_user_by_employee_id(
    client: GraphServiceClient, employee_id: str, *, select: Sequence[str] = USER_FIELDS
) -> User | None:
    """The one user whose ``employeeId`` is ``employee_id``, or None.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request, or several users share the employeeId.
    """
    found = [
        u
        async for u in iter_users(
            client, odata_filter=f"employeeId eq {odata_literal(employee_id)}", select=select, page_size=2
        )
    ]
    if len(found) > 1:
        raise PermanentError("several users share one employeeId; fix the directory", employee_id=employee_id)
    return found[0] if found else None


async def get_manager(client: GraphServiceClient, user_id: str) -> User | None:
    """The user's manager (a user), or None when none is set.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    from msgraph.generated.models.user import User
    from msgraph.generated.users.item.manager.manager_request_builder import ManagerRequestBuilder

    params = ManagerRequestBuilder.ManagerRequestBuilderGetQueryParameters(select=list(USER_FIELDS))
    config: Any = ManagerRequestBuilder.ManagerRequestBuilderGetRequestConfiguration(query_parameters=params)
    try:
        manager = await client.users.by_user_id(user_id).manager.get(request_configuration=config)
    except Exception as exc:
        err = to_waveguard_error(exc, operation="get manager")
        if isinstance(err, NotFoundError):
            return None
        raise err from exc
    return manager if isinstance(manager, User) else None


async def member_of_groups(client: GraphServiceClient, user_id: str) -> list[tuple[str, str | None]]:
    """The groups the user is a direct member of, as ``(id, displayName)`` pairs.

    Raises:
        NotFoundError: the user does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    from msgraph.generated.models.group import Group

    member_of = client.users.by_user_id(user_id).member_of
    pairs: list[tuple[str, str | None]] = []
    try:
        page = await member_of.get()
        while page is not None:
            pairs.extend(
                (obj.id, obj.display_name) for obj in page.value or [] if isinstance(obj, Group) and obj.id
            )
            if not page.odata_next_link:
                break
            page = await member_of.with_url(page.odata_next_link).get()
    except Exception as exc:
        raise to_waveguard_error(exc, operation="list groups of user") from exc
    return pairs
