"""Everything onboarding reads about a found hire, in one ``$batch``: the groups (for the wave),
the account's creation time, methods and directory roles (is it genuinely new?) and the manager
(who gets the TAP), expanded on the account itself.

Four reads as one round trip (with the look-up by employeeId when the hire is found and read at
once), parsed as raw JSON. A list longer than Graph's first page (a user in
more than 100 groups) is read again on its own, paged to the end. A throttled or failing item fails
the whole read (retryable), and so does a 404 on a list of a user Graph found (an account read as
having no methods could be handed a TAP): no decision is ever made on part of the facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph.account import ROLES_PATH, AccountFacts, facts_of, read_account_facts
from shared.graph.batch import BatchClient, BatchRequest, BatchResponse, item_error
from shared.graph.directory import USER_FIELDS, odata_literal
from shared.graph.users_json import group_pairs, member_of_groups_json, query, segment

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["HireReads", "find_and_read_hire", "read_hire"]

_USER_TYPE: Final = "#microsoft.graph.user"


@dataclass(frozen=True, slots=True)
class HireReads:
    """The hire's direct groups ``(id, displayName)``, account facts and manager (raw JSON or None)."""

    groups: list[tuple[str, str | None]]
    facts: AccountFacts
    manager: dict[str, Any] | None


async def read_hire(client: GraphServiceClient, user_id: str) -> HireReads:
    """The five reads about ``user_id`` in one ``$batch``.

    Raises:
        NotFoundError: the user does not exist.
        RetryableError: Graph throttled or failed the batch or one of its items.
        PermanentError: Graph refused a read.
    """
    answers = await BatchClient.for_graph(client).send_reads(_reads(user_id))
    found = _body(answers["user"], user_id)
    if found is None:
        raise NotFoundError("the user does not exist", user_id=user_id)
    return await _hire_reads(client, user_id, found, answers)


async def find_and_read_hire(
    client: GraphServiceClient, employee_id: str | None, user_principal_name: str
) -> tuple[dict[str, Any], HireReads] | None:
    """The hire an HR event names, found as ``find_employee`` finds it (by employeeId, else by
    userPrincipalName), with ``read_hire``'s reads, in one ``$batch`` when it can be: the reads go
    by the UPN next to the employeeId look-up and count only when the UPN's account is the one
    found (same object id; the manager comes expanded on that very account). Otherwise (HR renamed
    the account, the employeeId names another user, or the UPN's reads failed) the found user is
    read again by id. None: no such user.

    Raises:
        RetryableError: Graph throttled or failed the batch or one of its items.
        PermanentError: Graph refused a read, or several users share the employeeId.
    """
    requests = _reads(user_principal_name)
    if employee_id:
        options = query(
            filter=f"employeeId eq {odata_literal(employee_id)}", select=",".join(USER_FIELDS), top="2"
        )
        requests.append(BatchRequest("employee", "GET", f"/users?{options}"))
    answers = await BatchClient.for_graph(client).send_reads(requests)
    if employee_id:
        page = _body(answers["employee"], employee_id) or {}
        matches = [u for u in _items(page) if u.get("id")]
        if len(matches) > 1 or (matches and page.get("@odata.nextLink")):
            raise PermanentError(
                "several users share one employeeId; fix the directory", employee_id=employee_id
            )
        if matches:
            employee, by_upn = matches[0], answers["user"]
            if not (by_upn.ok and isinstance(by_upn.body, dict) and by_upn.body.get("id") == employee["id"]):
                return employee, await read_hire(client, str(employee["id"]))  # not the UPN's account
            return by_upn.body, await _hire_reads(client, str(employee["id"]), by_upn.body, answers)
    found = _body(answers["user"], user_principal_name)
    if found is None or not found.get("id"):
        return None
    return found, await _hire_reads(client, str(found["id"]), found, answers)


def _reads(key: str) -> list[BatchRequest]:
    """The user (the fields onboarding reads, its creation time, and its manager expanded on it),
    its groups, methods and directory roles, by object id or UPN."""
    user = f"/users/{segment(key)}"
    fields = ",".join(USER_FIELDS)
    # Not a request of its own: expanded on the user, the manager is that account's, whatever
    # account the key resolves to for the other reads.
    options = query(select=f"createdDateTime,{fields}", expand=f"manager($select={fields})")
    return [
        BatchRequest("user", "GET", f"{user}?{options}"),
        BatchRequest("groups", "GET", f"{user}/memberOf"),
        BatchRequest("methods", "GET", f"{user}/authentication/methods"),
        BatchRequest("roles", "GET", f"{user}/transitiveMemberOf/{ROLES_PATH}"),
    ]


async def _hire_reads(
    client: GraphServiceClient, user_id: str, found: dict[str, Any], answers: dict[str, BatchResponse]
) -> HireReads:
    """The reads' answers about the user ``found`` (id ``user_id``) as facts."""
    lists = [_body(answers[name], user_id) for name in ("groups", "methods", "roles")]
    if any(page is None for page in lists):
        # The user exists but one of its lists answered 404 (replication): never decide on "none".
        raise RetryableError("Graph did not find a list of a user it found; reading again", user_id=user_id)
    groups_page, methods_page, roles_page = (page or {} for page in lists)
    if any(page.get("@odata.nextLink") for page in (methods_page, roles_page)):
        facts = await read_account_facts(client, user_id)  # more than a page: read on their own
    else:
        facts = facts_of(found, _items(methods_page), _items(roles_page))
    if groups_page.get("@odata.nextLink"):
        groups = await member_of_groups_json(client, user_id)
    else:
        groups = group_pairs(groups_page)
    manager = found.get("manager")
    if not isinstance(manager, dict) or not manager.get("id"):
        manager = None
    elif manager.get("@odata.type", _USER_TYPE) != _USER_TYPE:
        manager = None  # an organisational contact: no mailbox of a person in the tenant
    return HireReads(groups=groups, facts=facts, manager=manager)


def _body(answer: BatchResponse, user_id: str) -> dict[str, Any] | None:
    """The item's JSON body, None on 404.

    Raises:
        RetryableError / PermanentError: the item was throttled, failed or refused.
    """
    if answer.ok:
        return answer.body if isinstance(answer.body, dict) else {}
    if answer.status == 404:
        return None
    raise item_error(answer, f"the hire's {answer.id} read", user_id=user_id)


def _items(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in page.get("value") or [] if isinstance(v, dict)]
