"""What tells a genuinely new account from one that already belongs to someone: its age, its
registered authentication methods and its directory roles (raw JSON reads, no SDK models)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import NotFoundError
from shared.graph.client import get_json

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["ROLES_PATH", "WEAK_METHOD_TYPES", "AccountFacts", "facts_of", "read_account_facts"]

# The directory roles a user holds, directly or through groups (under transitiveMemberOf).
ROLES_PATH: Final = "microsoft.graph.directoryRole?$select=id,displayName"

# Methods that prove nothing about who holds the account: the password, e-mail (self-service
# password reset only) and a Temporary Access Pass. Anything else is a registered strong method.
WEAK_METHOD_TYPES: Final = frozenset(
    {
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.emailAuthenticationMethod",
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    }
)


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """When Entra created the account, its strong methods and its directory roles."""

    created_at: datetime | None
    strong_methods: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


async def read_account_facts(client: GraphServiceClient, user_id: str) -> AccountFacts:
    """``createdDateTime``, ``/authentication/methods`` and transitive directory roles of the user
    (the three reads at once).

    Raises:
        NotFoundError: the user does not exist.
        RetryableError / PermanentError: Graph failed or refused a read.
    """
    user, methods, roles = await asyncio.gather(
        get_json(client, f"/users/{user_id}?$select=id,createdDateTime"),
        _all(client, f"/users/{user_id}/authentication/methods"),
        _all(client, f"/users/{user_id}/transitiveMemberOf/{ROLES_PATH}"),
    )
    if user is None:
        raise NotFoundError("the user does not exist", user_id=user_id)
    return facts_of(user, methods, roles)


def facts_of(
    user: dict[str, Any], methods: list[dict[str, Any]], roles: list[dict[str, Any]]
) -> AccountFacts:
    """The facts in Graph's answers: the user (``createdDateTime``), its methods and its roles."""
    created = user.get("createdDateTime")
    return AccountFacts(
        created_at=datetime.fromisoformat(created) if isinstance(created, str) and created else None,
        strong_methods=tuple(
            str(m.get("@odata.type")) for m in methods if m.get("@odata.type") not in WEAK_METHOD_TYPES
        ),
        roles=tuple(str(r.get("displayName") or r.get("id")) for r in roles),
    )


async def _all(client: GraphServiceClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    base = str(client.request_adapter.base_url).rstrip("/")
    next_path: str | None = path
    for _ in range(20):
        if next_path is None:
            break
        page = await get_json(client, next_path) or {}
        items.extend(v for v in page.get("value", []) if isinstance(v, dict))
        link = page.get("@odata.nextLink")
        next_path = str(link).removeprefix(base) if link else None
    return items
