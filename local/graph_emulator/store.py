"""The tenant's state: users, groups, memberships and managers, kept as Graph-shaped JSON objects.

Later features keep their own state next to the directory as *extensions*: a module registers a
loader once (``register_extension("tap", TapState.from_json)``) and reaches its state with
``store.extension("tap", TapState)``; snapshots save and restore every extension by name.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, overload

from local.graph_emulator.errors import ALREADY_MEMBER_MESSAGE, GraphError, JsonObject, bad_request, not_found

SNAPSHOT_VERSION = 1


class StoreExtension(Protocol):
    """Per-tenant state of a later feature (TAP, outbox, sign-ins ...)."""

    def to_json(self) -> JsonObject: ...


E = TypeVar("E", bound=StoreExtension)
_EXTENSION_LOADERS: dict[str, Callable[[JsonObject], StoreExtension]] = {}


def register_extension(name: str, loader: Callable[[JsonObject], StoreExtension]) -> None:
    """Make snapshots able to restore the extension called ``name``."""
    _EXTENSION_LOADERS[name] = loader


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TenantStore:
    """Users, groups and the links between them; not thread-safe (the emulator serialises access)."""

    def __init__(self, *, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.users: dict[str, JsonObject] = {}
        self.groups: dict[str, JsonObject] = {}
        self.managers: dict[str, str] = {}
        self.members: dict[str, dict[str, None]] = {}
        self.extensions: dict[str, StoreExtension] = {}
        # Every membership change and group deletion, in order: what /groups/delta reads. Entries are
        # (sequence number, group id, "add" | "remove" | "deleted", object id or "").
        self.change_log: list[tuple[int, str, str, str]] = []
        # Every user created, updated or deleted, in order: what /users/delta reads. Entries are
        # (sequence number, user id, "updated" | "deleted"); a creation is an update.
        self.user_log: list[tuple[int, str, str]] = []
        self._upn_index: dict[str, str] = {}
        self._new_id = new_id

    # users ---------------------------------------------------------------------------------------

    def add_user(self, user: JsonObject) -> JsonObject:
        """Store a user (an id is assigned when missing).

        Raises:
            GraphError: the userPrincipalName or id is already taken.
        """
        upn = str(user["userPrincipalName"])
        if upn.casefold() in self._upn_index:
            raise bad_request(
                "Another object with the same value for property userPrincipalName already exists."
            )
        stored = {"id": user.get("id") or self._new_id(), **{k: v for k, v in user.items() if k != "id"}}
        self._check_free_id(stored["id"])
        self.users[stored["id"]] = stored
        self._upn_index[upn.casefold()] = stored["id"]
        self.log_user(stored["id"], "updated")
        return stored

    def update_user(self, user_id: str, changes: JsonObject) -> JsonObject:
        """Change a user's properties (not its id or userPrincipalName).

        Raises:
            GraphError: 404 when no user has this id.
        """
        user = self.require_user(user_id)
        user.update({k: v for k, v in changes.items() if k not in ("id", "userPrincipalName")})
        self.log_user(user["id"], "updated")
        return user

    def log_user(self, user_id: str, kind: str) -> None:
        """Record a change to a user for ``/users/delta`` (``updated`` or ``deleted``)."""
        self.user_log.append((self.user_sequence + 1, user_id, kind))

    @property
    def user_sequence(self) -> int:
        """The sequence number of the latest user change (0: none)."""
        return self.user_log[-1][0] if self.user_log else 0

    def users_changed_since(self, sequence: int, until: int | None = None) -> dict[str, str]:
        """user id -> its last change kind, for the changes after ``sequence`` up to ``until``
        (oldest first): a round paged over several calls sees the same list on every page."""
        start = bisect.bisect_right(self.user_log, sequence, key=lambda entry: entry[0])
        end = (
            len(self.user_log)
            if until is None
            else bisect.bisect_right(self.user_log, until, key=lambda e: e[0])
        )
        changed: dict[str, str] = {}
        for _, user_id, kind in self.user_log[start:end]:
            changed.pop(user_id, None)
            changed[user_id] = kind
        return changed

    def find_user(self, key: str) -> JsonObject | None:
        """A user by object id or by userPrincipalName (case-insensitive)."""
        if key in self.users:
            return self.users[key]
        user_id = self._upn_index.get(key.casefold())
        return self.users[user_id] if user_id else None

    def require_user(self, key: str) -> JsonObject:
        """Raises: GraphError 404 when no user has this id or UPN."""
        user = self.find_user(key)
        if user is None:
            raise not_found(key)
        return user

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        if manager_id is None:
            self.managers.pop(user_id, None)
            return
        if manager_id not in self.users:
            raise not_found(manager_id)
        self.managers[user_id] = manager_id

    def manager_of(self, user_id: str) -> JsonObject | None:
        manager_id = self.managers.get(user_id)
        return self.users.get(manager_id) if manager_id else None

    # groups --------------------------------------------------------------------------------------

    def add_group(self, group: JsonObject) -> JsonObject:
        """Store a group with Graph's defaults for the properties not given."""
        stored: JsonObject = {
            "id": group.get("id") or self._new_id(),
            "deletedDateTime": None,
            "classification": None,
            "createdDateTime": utc_now_iso(),
            "description": None,
            "displayName": None,
            "groupTypes": [],
            "isAssignableToRole": None,
            "mail": None,
            "mailEnabled": False,
            "mailNickname": None,
            "membershipRule": None,
            "membershipRuleProcessingState": None,
            "onPremisesSyncEnabled": None,
            "proxyAddresses": [],
            "renewedDateTime": utc_now_iso(),
            "securityEnabled": True,
            "securityIdentifier": None,
            "visibility": None,
        }
        stored.update({k: v for k, v in group.items() if k != "id"})
        self._check_free_id(stored["id"])
        self.groups[stored["id"]] = stored
        self.members[stored["id"]] = {}
        return stored

    def require_group(self, group_id: str) -> JsonObject:
        """Raises: GraphError 404 when the group does not exist."""
        group = self.groups.get(group_id)
        if group is None:
            raise not_found(group_id)
        return group

    def find_group_by_name(self, display_name: str) -> JsonObject | None:
        wanted = display_name.casefold()
        return next((g for g in self.groups.values() if str(g["displayName"]).casefold() == wanted), None)

    def delete_group(self, group_id: str) -> None:
        self.require_group(group_id)
        del self.groups[group_id]
        del self.members[group_id]
        for member_ids in self.members.values():
            member_ids.pop(group_id, None)
        self._log(group_id, "deleted", "")

    # membership ----------------------------------------------------------------------------------

    def directory_object(self, object_id: str) -> JsonObject | None:
        return self.users.get(object_id) or self.groups.get(object_id)

    def is_user(self, object_id: str) -> bool:
        return object_id in self.users

    def member_ids(self, group_id: str) -> list[str]:
        self.require_group(group_id)
        return list(self.members[group_id])

    def member_objects(self, group_id: str) -> list[JsonObject]:
        """The users and groups in a group, in the order they were added."""
        return [obj for oid in self.member_ids(group_id) if (obj := self.directory_object(oid)) is not None]

    def member_pages(self, group_id: str) -> MemberSequence:
        """The group's members as a sequence that builds only the slice asked for (paging a large
        group costs each page, not the whole group every page)."""
        ids = [oid for oid in self.member_ids(group_id) if oid in self.users or oid in self.groups]
        return MemberSequence(self, ids)

    def add_members(self, group_id: str, object_ids: Iterable[str]) -> None:
        """Add members all or nothing, as Graph does.

        Raises:
            GraphError: the group or an object is unknown (404), or one is already a member (400).
        """
        self.require_group(group_id)
        ids = list(object_ids)
        current = self.members[group_id]
        for object_id in ids:
            if self.directory_object(object_id) is None or object_id == group_id:
                raise not_found(object_id)
        if len(set(ids)) != len(ids) or any(object_id in current for object_id in ids):
            raise bad_request(ALREADY_MEMBER_MESSAGE)
        for object_id in ids:
            current[object_id] = None
            self._log(group_id, "add", object_id)

    def remove_member(self, group_id: str, object_id: str) -> None:
        """Raises: GraphError 404 when the group is unknown or the object is not a member."""
        self.require_group(group_id)
        if object_id not in self.members[group_id]:
            raise not_found(object_id)
        del self.members[group_id][object_id]
        self._log(group_id, "remove", object_id)

    @property
    def change_sequence(self) -> int:
        """The sequence number of the latest change (0: none since the store was built)."""
        return self.change_log[-1][0] if self.change_log else 0

    def changes_since(self, sequence: int) -> list[tuple[int, str, str, str]]:
        """The changes after ``sequence``, oldest first."""
        return [entry for entry in self.change_log if entry[0] > sequence]

    def _log(self, group_id: str, kind: str, object_id: str) -> None:
        self.change_log.append((self.change_sequence + 1, group_id, kind, object_id))

    def groups_of(self, object_id: str) -> list[JsonObject]:
        return [self.groups[gid] for gid, member_ids in self.members.items() if object_id in member_ids]

    # extensions and snapshots --------------------------------------------------------------------

    def extension(self, name: str, factory: Callable[[], E]) -> E:
        """The state of the extension ``name``, created with ``factory`` on first use."""
        if name not in self.extensions:
            self.extensions[name] = factory()
        return self.extensions[name]  # type: ignore[return-value]

    def counts(self) -> JsonObject:
        return {
            "users": len(self.users),
            "groups": len(self.groups),
            "memberships": sum(len(ids) for ids in self.members.values()),
            "managers": len(self.managers),
            "extensions": sorted(self.extensions),
        }

    def to_json(self) -> JsonObject:
        return {
            "version": SNAPSHOT_VERSION,
            "users": list(self.users.values()),
            "managers": dict(self.managers),
            "groups": list(self.groups.values()),
            "members": {gid: list(ids) for gid, ids in self.members.items()},
            "extensions": {name: ext.to_json() for name, ext in self.extensions.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> TenantStore:
        """Rebuild a store from ``to_json`` output.

        Raises:
            ValueError: the snapshot has another version, or names an extension nobody registered.
        """
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot.version must be {SNAPSHOT_VERSION}")
        store = cls()
        for user in data.get("users", []):
            store.add_user(user)
        for group in data.get("groups", []):
            store.add_group(group)
        store.managers.update(data.get("managers", {}))
        for gid, ids in data.get("members", {}).items():
            store.members[gid] = dict.fromkeys(ids)
        for name, state in data.get("extensions", {}).items():
            if name not in _EXTENSION_LOADERS:
                raise ValueError(f"snapshot.extensions.{name}: no extension with this name is registered")
            store.extensions[name] = _EXTENSION_LOADERS[name](state)
        return store

    def _check_free_id(self, object_id: str) -> None:
        if object_id in self.users or object_id in self.groups:
            raise bad_request(
                f"Another object with the same value for property id already exists: '{object_id}'."
            )


__all__ = ["GraphError", "StoreExtension", "TenantStore", "register_extension"]


class MemberSequence(Sequence[JsonObject]):
    """A group's member objects, built on access (a page at a time)."""

    def __init__(self, store: Any, ids: list[str]) -> None:
        self._store = store
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> JsonObject: ...

    @overload
    def __getitem__(self, index: slice) -> list[JsonObject]: ...

    def __getitem__(self, index: int | slice) -> JsonObject | list[JsonObject]:
        if isinstance(index, slice):
            return [self._store.directory_object(oid) for oid in self._ids[index]]
        return self._store.directory_object(self._ids[index])  # type: ignore[no-any-return]
