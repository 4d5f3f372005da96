"""Temporary Access Pass methods of a user: create (the value is returned once), list, delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from shared.errors import NotFoundError, PermanentError
from shared.graph.errors import delete_if_present, to_waveguard_error

if TYPE_CHECKING:
    from msgraph.generated.models.temporary_access_pass_authentication_method import (
        TemporaryAccessPassAuthenticationMethod,
    )
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["IssuedTap", "TapMethod", "create_tap", "delete_tap", "list_taps"]


@dataclass(frozen=True, slots=True)
class TapMethod:
    """A TAP method as listed (never its value)."""

    id: str
    created_at: datetime | None
    start_at: datetime | None
    lifetime_minutes: int | None
    is_usable_once: bool | None
    is_usable: bool | None


@dataclass(frozen=True, slots=True)
class IssuedTap:
    """A TAP just created: its metadata, and the value Graph returns only once (kept out of repr)."""

    method: TapMethod
    value: str = field(repr=False)


def _method(item: TemporaryAccessPassAuthenticationMethod) -> TapMethod:
    return TapMethod(
        id=str(item.id or ""),
        created_at=item.created_date_time,
        start_at=item.start_date_time,
        lifetime_minutes=item.lifetime_in_minutes,
        is_usable_once=item.is_usable_once,
        is_usable=item.is_usable,
    )


async def create_tap(
    client: GraphServiceClient,
    user_id: str,
    *,
    lifetime_minutes: int,
    is_usable_once: bool,
    start_at: datetime | None = None,
) -> IssuedTap:
    """Create a TAP for ``user_id`` (it replaces any earlier one: Graph keeps one per user).

    ``start_at`` None means usable now.

    Raises:
        NotFoundError: the user does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused it (policy disabled, lifetime outside the policy, ...) or
            returned no value.
    """
    from msgraph.generated.models.temporary_access_pass_authentication_method import (
        TemporaryAccessPassAuthenticationMethod,
    )

    body = TemporaryAccessPassAuthenticationMethod(
        lifetime_in_minutes=lifetime_minutes, is_usable_once=is_usable_once, start_date_time=start_at
    )
    methods = client.users.by_user_id(user_id).authentication.temporary_access_pass_methods
    try:
        created = await methods.post(body)
    except Exception as exc:
        # The request body holds no secret; the response (with the value) never reaches here.
        raise to_waveguard_error(exc, operation="create temporary access pass") from None
    if created is None or not created.id or not created.temporary_access_pass:
        raise PermanentError("Graph created a temporary access pass but returned no value", user_id=user_id)
    return IssuedTap(method=_method(created), value=created.temporary_access_pass)


async def list_taps(client: GraphServiceClient, user_id: str) -> list[TapMethod]:
    """The user's TAP methods (metadata only); an unknown user has none.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    methods = client.users.by_user_id(user_id).authentication.temporary_access_pass_methods
    try:
        page = await methods.get()
    except Exception as exc:
        err = to_waveguard_error(exc, operation="list temporary access passes")
        if isinstance(err, NotFoundError):
            return []
        raise err from None
    return [_method(item) for item in (page.value if page and page.value else []) if item.id]


async def delete_tap(client: GraphServiceClient, user_id: str, method_id: str) -> bool:
    """Delete one TAP method; False when it was already gone (a replay is fine).

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    methods = client.users.by_user_id(user_id).authentication.temporary_access_pass_methods
    method = methods.by_temporary_access_pass_authentication_method_id(method_id)
    return await delete_if_present(method.delete(), operation="delete temporary access pass")
