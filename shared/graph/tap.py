"""Temporary Access Pass methods of a user: create (the value is returned once), list, delete.

Create and list are raw JSON (no msgraph model is parsed: onboarding issues one per hire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from shared.errors import NotFoundError, PermanentError
from shared.graph.client import request_json
from shared.graph.errors import delete_if_present

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["IssuedTap", "TapMethod", "create_tap", "delete_tap", "list_taps"]

_MAX_PAGES: Final = 20


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


def _methods_path(user_id: str) -> str:
    return f"/users/{quote(user_id, safe='@')}/authentication/temporaryAccessPassMethods"


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _method(item: dict[str, Any]) -> TapMethod:
    lifetime = item.get("lifetimeInMinutes")
    return TapMethod(
        id=str(item.get("id") or ""),
        created_at=_when(item.get("createdDateTime")),
        start_at=_when(item.get("startDateTime")),
        lifetime_minutes=lifetime if isinstance(lifetime, int) and not isinstance(lifetime, bool) else None,
        is_usable_once=_flag(item.get("isUsableOnce")),
        is_usable=_flag(item.get("isUsable")),
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
    body: dict[str, Any] = {"lifetimeInMinutes": lifetime_minutes, "isUsableOnce": is_usable_once}
    if start_at is not None:
        body["startDateTime"] = start_at.isoformat().replace("+00:00", "Z")
    # The request body holds no secret; the answer (with the value) never reaches an error message.
    created = await request_json(
        client, "POST", _methods_path(user_id), body, operation="create temporary access pass"
    )
    if created is None:
        raise NotFoundError("the user does not exist", user_id=user_id)
    value = created.get("temporaryAccessPass")
    if not created.get("id") or not isinstance(value, str) or not value:
        raise PermanentError("Graph created a temporary access pass but returned no value", user_id=user_id)
    return IssuedTap(method=_method(created), value=value)


async def list_taps(client: GraphServiceClient, user_id: str) -> list[TapMethod]:
    """The user's TAP methods (metadata only); an unknown user has none.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    base = str(client.request_adapter.base_url).rstrip("/")
    path: str | None = _methods_path(user_id)
    methods: list[TapMethod] = []
    for _ in range(_MAX_PAGES):
        if path is None:
            break
        page = await request_json(client, "GET", path, operation="list temporary access passes")
        if page is None:
            return []
        methods.extend(_method(i) for i in page.get("value") or [] if isinstance(i, dict) and i.get("id"))
        link = page.get("@odata.nextLink")
        if link is not None and not (isinstance(link, str) and link.startswith(base)):
            raise PermanentError("Graph's next TAP page is not under its base URL", user_id=user_id)
        path = link[len(base) :] if isinstance(link, str) else None
    return methods


async def delete_tap(client: GraphServiceClient, user_id: str, method_id: str) -> bool:
    """Delete one TAP method; False when it was already gone (a replay is fine).

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    methods = client.users.by_user_id(user_id).authentication.temporary_access_pass_methods
    method = methods.by_temporary_access_pass_authentication_method_id(method_id)
    return await delete_if_present(method.delete(), operation="delete temporary access pass")
