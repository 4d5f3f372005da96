"""The Graph operations onboarding needs, as a port, and its implementation over ``shared.graph``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.graph.account import AccountFacts
from shared.graph.hire_writes import SendAndJoin
from shared.graph.mail import MailMessage, MessageState
from shared.graph.tap import IssuedTap, TapMethod

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.graph.hire_reads import HireReads

__all__ = ["DirectoryUser", "GraphOnboarding", "HireFacts", "OnboardingGraph"]


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """The Entra user fields onboarding reads."""

    id: str
    user_principal_name: str | None = None
    display_name: str | None = None
    mail: str | None = None
    employee_id: str | None = None
    department: str | None = None
    country: str | None = None

    @property
    def address(self) -> str | None:
        """Where e-mail reaches this user: their mail, else their UPN."""
        return self.mail or self.user_principal_name


@dataclass(frozen=True, slots=True)
class HireFacts:
    """What onboarding reads about a found hire: direct groups ``(id, displayName)``, the account's
    facts (is it genuinely new?) and the manager Entra records."""

    groups: list[tuple[str, str | None]]
    account: AccountFacts
    manager: DirectoryUser | None


class OnboardingGraph(Protocol):
    """Every Graph call the onboarding use cases make (unit tests pass an in-memory fake)."""

    async def find_user(self, id_or_upn: str) -> DirectoryUser | None:
        """The user by object id or UPN, or None."""
        ...

    async def find_user_by_employee_id(self, employee_id: str) -> DirectoryUser | None:
        """The user whose employeeId matches, or None."""
        ...

    async def get_manager(self, user_id: str) -> DirectoryUser | None:
        """The user's manager, or None."""
        ...

    async def account_facts(self, user_id: str) -> AccountFacts:
        """When the account was created, its strong methods and its directory roles."""
        ...

    async def member_of(self, user_id: str) -> list[tuple[str, str | None]]:
        """The user's direct groups as (id, displayName)."""
        ...

    async def hire_facts(self, user_id: str) -> HireFacts:
        """The user's groups, account facts and manager, read together."""
        ...

    async def find_hire(
        self, employee_id: str | None, user_principal_name: str
    ) -> tuple[DirectoryUser, HireFacts] | None:
        """The user by employeeId, else by UPN, with its ``hire_facts`` (None: no such user)."""
        ...

    async def find_group_id(self, *, group_id: str | None, display_name: str | None) -> str | None:
        """The id of the group by id or exact displayName, or None when it does not exist."""
        ...

    async def create_security_group(self, display_name: str, *, description: str) -> str:
        """Create a security group; returns its id."""
        ...

    async def delete_group(self, group_id: str) -> bool:
        """Delete a group; False when it was already gone."""
        ...

    async def add_member(self, group_id: str, user_id: str) -> bool:
        """Add a member; False when already a member."""
        ...

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        """Remove a member; False when not a member."""
        ...

    async def create_tap(
        self, user_id: str, *, lifetime_minutes: int, is_usable_once: bool, start_at: datetime | None
    ) -> IssuedTap:
        """Create a TAP (replacing any earlier one)."""
        ...

    async def list_taps(self, user_id: str) -> list[TapMethod]:
        """The user's TAP methods."""
        ...

    async def delete_tap(self, user_id: str, method_id: str) -> bool:
        """Delete a TAP method; False when already gone."""
        ...

    async def send_mail(self, sender: str, message: MailMessage) -> None:
        """Send an e-mail from ``sender``."""
        ...

    async def create_draft(self, sender: str, message: MailMessage, *, tag: str) -> str:
        """Save a draft in ``sender``'s mailbox; its immutable id."""
        ...

    async def message_state(self, sender: str, message_id: str) -> MessageState | None:
        """``draft``, ``sent``, or None when the message is gone."""
        ...

    async def send_draft(self, sender: str, message_id: str) -> None:
        """Send a saved draft."""
        ...

    async def send_draft_and_add_member(
        self, sender: str, message_id: str, group_id: str, user_id: str
    ) -> SendAndJoin:
        """Send a saved draft and add a group member in one round trip, each settled on its own."""
        ...


def _user_of(user: Mapping[str, Any] | None) -> DirectoryUser | None:
    """A user as Graph answered it (JSON), with the fields onboarding reads."""
    if not user or not user.get("id"):
        return None

    def text(name: str) -> str | None:
        value = user.get(name)
        return value if isinstance(value, str) else None

    return DirectoryUser(
        id=str(user["id"]),
        user_principal_name=text("userPrincipalName"),
        display_name=text("displayName"),
        mail=text("mail"),
        employee_id=text("employeeId"),
        department=text("department"),
        country=text("country"),
    )


def _hire_facts(found: HireReads) -> HireFacts:
    return HireFacts(groups=found.groups, account=found.facts, manager=_user_of(found.manager))


class GraphOnboarding:
    """``OnboardingGraph`` over the process's Graph client (``client()``: one per event loop)."""

    def __init__(self, client: Callable[[], GraphServiceClient]) -> None:
        self._client = client

    # The user reads are raw JSON (shared.graph.users_json): a hire parses no msgraph model for them.

    async def find_user(self, id_or_upn: str) -> DirectoryUser | None:
        from shared.graph.users_json import find_user_json

        return _user_of(await find_user_json(self._client(), id_or_upn))

    async def find_user_by_employee_id(self, employee_id: str) -> DirectoryUser | None:
        from shared.graph.users_json import find_user_json_by_employee_id

        return _user_of(await find_user_json_by_employee_id(self._client(), employee_id))

    async def get_manager(self, user_id: str) -> DirectoryUser | None:
        from shared.graph.users_json import get_manager_json

        return _user_of(await get_manager_json(self._client(), user_id))

    async def account_facts(self, user_id: str) -> AccountFacts:
        from shared.graph.account import read_account_facts

        return await read_account_facts(self._client(), user_id)

    async def member_of(self, user_id: str) -> list[tuple[str, str | None]]:
        from shared.graph.users_json import member_of_groups_json

        return await member_of_groups_json(self._client(), user_id)

    async def hire_facts(self, user_id: str) -> HireFacts:
        from shared.graph.hire_reads import read_hire

        return _hire_facts(await read_hire(self._client(), user_id))

    async def find_hire(
        self, employee_id: str | None, user_principal_name: str
    ) -> tuple[DirectoryUser, HireFacts] | None:
        from shared.graph.hire_reads import find_and_read_hire

        located = await find_and_read_hire(self._client(), employee_id, user_principal_name)
        if located is None:
            return None
        user = _user_of(located[0])
        return None if user is None else (user, _hire_facts(located[1]))

    async def find_group_id(self, *, group_id: str | None, display_name: str | None) -> str | None:
        from shared.graph.users_json import find_group_id_json

        return await find_group_id_json(self._client(), group_id=group_id, display_name=display_name)

    async def create_security_group(self, display_name: str, *, description: str) -> str:
        from shared.graph.groups import create_security_group

        return await create_security_group(self._client(), display_name, description=description)

    async def delete_group(self, group_id: str) -> bool:
        from shared.graph.groups import delete_group

        return await delete_group(self._client(), group_id)

    async def add_member(self, group_id: str, user_id: str) -> bool:
        from shared.graph.groups import add_member

        return await add_member(self._client(), group_id, user_id)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        from shared.graph.groups import remove_member

        return await remove_member(self._client(), group_id, user_id)

    async def create_tap(
        self, user_id: str, *, lifetime_minutes: int, is_usable_once: bool, start_at: datetime | None
    ) -> IssuedTap:
        from shared.graph.tap import create_tap

        return await create_tap(
            self._client(),
            user_id,
            lifetime_minutes=lifetime_minutes,
            is_usable_once=is_usable_once,
            start_at=start_at,
        )

    async def list_taps(self, user_id: str) -> list[TapMethod]:
        from shared.graph.tap import list_taps

        return await list_taps(self._client(), user_id)

    async def delete_tap(self, user_id: str, method_id: str) -> bool:
        from shared.graph.tap import delete_tap

        return await delete_tap(self._client(), user_id, method_id)

    async def send_mail(self, sender: str, message: MailMessage) -> None:
        from shared.graph.mail import send_mail

        await send_mail(self._client(), sender, message)

    async def create_draft(self, sender: str, message: MailMessage, *, tag: str) -> str:
        from shared.graph.mail import create_draft

        return await create_draft(self._client(), sender, message, tag=tag)

    async def message_state(self, sender: str, message_id: str) -> MessageState | None:
        from shared.graph.mail import message_state

        return await message_state(self._client(), sender, message_id)

    async def send_draft(self, sender: str, message_id: str) -> None:
        from shared.graph.mail import send_draft

        await send_draft(self._client(), sender, message_id)

    async def send_draft_and_add_member(
        self, sender: str, message_id: str, group_id: str, user_id: str
    ) -> SendAndJoin:
        from shared.graph.hire_writes import send_draft_and_add_member

        return await send_draft_and_add_member(self._client(), sender, message_id, group_id, user_id)
