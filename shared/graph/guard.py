"""The last line of the break-glass promise, inside the Graph client itself.

Every request WaveGuard's Graph client sends passes ``BreakGlassGuard.check`` (an httpx request hook
installed by ``build_graph_client``), whatever code built it and whatever the plan says. It refuses,
before anything is sent:

- a membership write that adds a break-glass account to any group but the exclusion group, adds
  the exclusion group itself to a group (nesting), adds anyone else to the exclusion group, removes
  anything from it, or deletes it (``POST /groups/{id}/members/$ref``, ``PATCH /groups/{id}`` with
  ``members@odata.bind``, ``DELETE /groups/{id}/members/{m}/$ref``, ``DELETE /groups/{id}``, and each
  of those inside a ``$batch``);
- a write to a break-glass account itself or its authentication (``PATCH``/``DELETE
  /users/{id}``, anything under ``/users/{id}/authentication``: a TAP, a method removed, a per-user
  MFA change), by object id or userPrincipalName;
- a Conditional Access policy write whose users condition lacks the break-glass exclusion: the
  exclusion group in ``excludeGroups`` AND every break-glass account in ``excludeUsers`` (both: a
  policy excluding only the group locks out an account someone removed from it, one excluding only
  the accounts locks out an account added later), checked on every create (``POST``/``PUT``) and
  every ``conditions`` update; and any other PATCH (a state, grant or session change) after which
  the policy (the live one with the patch applied, read with a GET) would be enabled while its live
  users condition lacks that exclusion.

The break-glass account ids and the exclusion group id come from the plan's ``breakGlass`` section,
resolved through the same client (plain GETs, once per guard); when they cannot be resolved every
write is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from urllib.parse import quote, unquote, urlsplit

import httpx

from shared.errors import SafetyViolationError, WaveGuardError

__all__ = ["BreakGlassGuard", "BreakGlassIds", "GetJson", "resolve_break_glass_ids"]

RULE: Final = "break-glass"
_WRITES: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_VERSION: Final = re.compile(r"^/(?:v1\.0|beta)(?=/)")
_ADD_REF: Final = re.compile(r"^/groups/([^/]+)/members/\$ref$", re.IGNORECASE)
_REMOVE_REF: Final = re.compile(r"^/groups/([^/]+)/members/([^/]+)/\$ref$", re.IGNORECASE)
_GROUP: Final = re.compile(r"^/groups/([^/]+)$", re.IGNORECASE)
_GROUPS: Final = re.compile(r"^/groups$", re.IGNORECASE)
_CA_POLICIES: Final = re.compile(r"^/identity/conditionalAccess/policies(?:/([^/]+))?$", re.IGNORECASE)
_BATCH: Final = re.compile(r"^/\$batch$", re.IGNORECASE)
# A user object or its authentication (methods, TAPs, per-user MFA requirements).
_USER_WRITE: Final = re.compile(r"^/users/([^/]+)(?:/authentication(?:/.*)?)?$", re.IGNORECASE)
_GUID: Final = re.compile(r"^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$")

# GET a path relative to the Graph base URL (e.g. "/users/x?$select=id"); the parsed JSON, or None on 404.
GetJson = Callable[[str], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class BreakGlassIds:
    """The break-glass set-up as object ids (lower case)."""

    exclusion_group_id: str
    account_ids: frozenset[str]


class BreakGlassGuard:
    """Refuses Graph writes that could lock the tenant out (see the module docstring)."""

    def __init__(self, resolve: Callable[[], Awaitable[BreakGlassIds]], *, get_json: GetJson) -> None:
        self._resolve = resolve
        self._get_json = get_json
        self._ids: BreakGlassIds | None = None
        self._lock = asyncio.Lock()
        self.refused = 0

    async def ids(self) -> BreakGlassIds:
        """The resolved ids (resolved on first use; a failure is retried on the next write).

        Raises:
            SafetyViolationError: the break-glass set-up cannot be resolved, so no write is allowed.
        """
        if self._ids is not None:
            return self._ids
        async with self._lock:
            if self._ids is None:
                try:
                    self._ids = await self._resolve()
                except SafetyViolationError:
                    raise
                except WaveGuardError as exc:
                    raise SafetyViolationError(
                        f"Graph writes refused: the break-glass accounts and exclusion group could not be "
                        f"resolved ({exc})",
                        rule=RULE,
                    ) from exc
            return self._ids

    async def __call__(self, request: httpx.Request) -> None:
        """The httpx request hook."""
        await self.check(request.method, str(request.url), await _body(request))

    async def check(self, method: str, url: str, body: Any) -> None:
        """Raise when this request would break a break-glass rule; return when it may be sent.

        Raises:
            SafetyViolationError: the request is refused (nothing is sent).
        """
        method = method.upper()
        if method not in _WRITES:
            return
        path = _graph_path(url)
        if _BATCH.match(path) and method == "POST":
            for item in _batch_items(body):
                await self.check(str(item.get("method", "GET")), str(item.get("url", "")), item.get("body"))
            return
        if m := _USER_WRITE.match(path):
            await self._check_user(m.group(1).lower(), await self.ids())
            return
        if not (path.lower().startswith("/groups") or _CA_POLICIES.match(path)):
            return
        ids = await self.ids()
        if _CA_POLICIES.match(path):
            await self._check_policy(method, path, body, ids)
            return
        self._check_membership(method, path, body, ids)

    async def _check_user(self, key: str, ids: BreakGlassIds) -> None:
        """No write to a break-glass account itself or its authentication: no disabling or
        deleting it, no TAP, no method removed, no per-user MFA change."""
        user_id = key
        if not _GUID.match(key):  # a userPrincipalName: which account is it?
            found = await self._get_json(f"/users/{quote(key, safe='@')}?$select=id")
            user_id = str((found or {}).get("id") or "").lower()
        if user_id in ids.account_ids:
            self._refuse(f"a write to break-glass account {key} or its authentication methods")

    def _check_membership(self, method: str, path: str, body: Any, ids: BreakGlassIds) -> None:
        if _GROUPS.match(path) and method == "POST":
            # A new group created with members: none may be a break-glass account or the exclusion group.
            self._check_adds("(new group)", _binds(body), ids)
            return
        if m := _ADD_REF.match(path):
            if method == "POST":
                reference = body.get("@odata.id") if isinstance(body, dict) else None
                self._check_adds(m.group(1).lower(), [_ref_id(reference)], ids)
            elif method == "DELETE" and m.group(1).lower() == ids.exclusion_group_id:
                # DELETE /groups/{id}/members/$ref?$id=...: the other way to remove a member
                self._refuse(
                    f"removing a member from the break-glass exclusion group {ids.exclusion_group_id}"
                )
            return
        if (m := _REMOVE_REF.match(path)) and method == "DELETE":
            if m.group(1).lower() == ids.exclusion_group_id:
                self._refuse(
                    f"removing a member from the break-glass exclusion group {ids.exclusion_group_id}"
                )
            return
        if m := _GROUP.match(path):
            group_id = m.group(1).lower()
            if method == "DELETE" and group_id == ids.exclusion_group_id:
                self._refuse(f"deleting the break-glass exclusion group {group_id}")
            if method == "PATCH":
                self._check_adds(group_id, _binds(body), ids)

    def _check_adds(self, group_id: str, members: Iterable[str | None], ids: BreakGlassIds) -> None:
        for member in members:
            if member is None:
                self._refuse(f"a member reference WaveGuard cannot read, added to group {group_id}")
            elif member == ids.exclusion_group_id:
                self._refuse(f"nesting the break-glass exclusion group in group {group_id}")
            elif group_id == ids.exclusion_group_id and member not in ids.account_ids:
                self._refuse(f"adding {member}, not a break-glass account, to the exclusion group")
            elif member in ids.account_ids and group_id != ids.exclusion_group_id:
                self._refuse(f"adding break-glass account {member} to group {group_id}")

    async def _check_policy(self, method: str, path: str, body: Any, ids: BreakGlassIds) -> None:
        if method == "DELETE":
            return  # deleting a policy removes enforcement; it can never lock anyone out
        if not isinstance(body, dict):
            self._refuse("a Conditional Access policy write without a JSON body")
        if method in {"POST", "PUT"} or "conditions" in body:
            conditions = body.get("conditions")
            users = conditions.get("users") if isinstance(conditions, dict) else None
            if not _excludes(users, ids):
                self._refuse(
                    "a Conditional Access policy without the break-glass exclusion (the exclusion group "
                    "in excludeGroups and every break-glass account in excludeUsers)"
                )
            return
        # Any other PATCH (state, grant or session controls): the policy it leaves behind is the live
        # one with this patch applied; if that is enabled, its live users must exclude break-glass.
        live = await self._get_json(path)
        live_state = live.get("state") if isinstance(live, Mapping) else None
        state = body.get("state", live_state)
        if state != "enabled":
            return
        conditions = live.get("conditions") if isinstance(live, Mapping) else None
        live_users = conditions.get("users") if isinstance(conditions, Mapping) else None
        if not _excludes(live_users, ids):
            self._refuse(
                "a write leaving a Conditional Access policy enabled while its users lack the break-glass "
                "exclusion (the exclusion group in excludeGroups and every break-glass account in "
                "excludeUsers)"
            )

    def _refuse(self, what: str) -> NoReturn:
        self.refused += 1
        raise SafetyViolationError(f"refused by the break-glass guard: {what}", rule=RULE)


def _excludes(users: Any, ids: BreakGlassIds) -> bool:
    if not isinstance(users, Mapping):
        return False
    groups = {str(g).lower() for g in users.get("excludeGroups") or [] if isinstance(g, str)}
    accounts = {str(u).lower() for u in users.get("excludeUsers") or [] if isinstance(u, str)}
    # Both, always: the group alone loses an account taken out of it, the accounts alone miss one
    # added to the group later.
    return ids.exclusion_group_id in groups and ids.account_ids <= accounts


def _graph_path(url: str) -> str:
    path = unquote(urlsplit(url).path)
    if not path.startswith("/"):
        path = "/" + path
    # Strip the service prefix (/v1.0 after any host path, e.g. a proxy's) but keep the resource path.
    index = max(path.find("/v1.0/"), path.find("/beta/"))
    if index > 0:
        path = path[index:]
    return _VERSION.sub("", path).rstrip("/") or "/"


def _ref_id(reference: Any) -> str | None:
    if not isinstance(reference, str) or not reference.strip():
        return None
    segment = unquote(urlsplit(reference.strip()).path).rstrip("/").rsplit("/", 1)[-1]
    return segment.lower() or None


def _binds(body: Any) -> list[str | None]:
    """The member references of a ``members@odata.bind`` (property names matched in any case)."""
    if not isinstance(body, Mapping):
        return []
    refs: list[str | None] = []
    for key, value in body.items():
        if isinstance(key, str) and key.casefold() == "members@odata.bind":
            refs.extend(_ref_id(v) for v in (value if isinstance(value, list) else [value]))
    return refs


def _batch_items(body: Any) -> list[Mapping[str, Any]]:
    requests = body.get("requests") if isinstance(body, Mapping) else None
    return [r for r in requests if isinstance(r, Mapping)] if isinstance(requests, list) else []


async def _body(request: httpx.Request) -> Any:
    raw = await request.aread()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # not JSON: the checks treat it as unreadable


async def resolve_break_glass_ids(break_glass: Any, get_json: GetJson) -> BreakGlassIds:
    """Resolve the plan's ``breakGlass`` section (``shared.config.BreakGlass``) to object ids.

    Raises:
        SafetyViolationError: an account or the exclusion group does not exist or is ambiguous.
        RetryableError: Graph could not be reached.
    """
    ref = break_glass.exclusion_group
    if ref.id:
        group_id = str(ref.id).lower()
    else:
        name = str(ref.display_name).replace("'", "''")
        page = await get_json(f"/groups?$filter=displayName eq '{name}'&$select=id,displayName")
        found = [g for g in (page or {}).get("value", []) if isinstance(g, Mapping)]
        if len(found) != 1:
            raise SafetyViolationError(
                f"breakGlass.exclusionGroup: {len(found)} groups are named {ref.display_name!r} (expected 1)",
                rule=RULE,
            )
        group_id = str(found[0]["id"]).lower()
    accounts: set[str] = set()
    for index, account in enumerate(break_glass.accounts):
        if account.id:
            accounts.add(str(account.id).lower())
            continue
        user = await get_json(f"/users/{account.user_principal_name}?$select=id")
        if not user or not user.get("id"):
            raise SafetyViolationError(
                f"breakGlass.accounts[{index}]: {account.user_principal_name} not found in the tenant",
                rule=RULE,
            )
        accounts.add(str(user["id"]).lower())
    return BreakGlassIds(group_id, frozenset(accounts))
