"""Provisioning lag: users created through the admin API with ``visibleAfterSeconds`` appear in the
directory only once that much emulated time has passed (HR-driven provisioning often lags the HR
event by minutes to hours).

Until then the user is invisible to every Graph call (get, list, filter, references); the delay
is divided by the emulator's time scale. Due users are moved into the directory at the start of
each Graph request, so every lookup sees one consistent tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from local.graph_emulator.clock import iso_utc, parse_iso
from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

if TYPE_CHECKING:
    from local.graph_emulator.app import Emulator

admin_routes = RouteTable()
EXTENSION = "provisioning"


@dataclass
class PendingUsers:
    """Users waiting to appear: ``{"user", "managerId", "visibleAt"}``, in creation order."""

    pending: list[JsonObject] = field(default_factory=list)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.pending)

    def to_json(self) -> JsonObject:
        return {"pending": self.pending}

    @classmethod
    def from_json(cls, data: JsonObject) -> PendingUsers:
        return cls(pending=list(data.get("pending", [])))

    def holds_upn(self, upn: str) -> bool:
        wanted = upn.casefold()
        return any(str(p["user"]["userPrincipalName"]).casefold() == wanted for p in self.pending)


register_extension(EXTENSION, PendingUsers.from_json)


def parse_delay(raw: Any, where: str) -> float:
    """``visibleAfterSeconds``: a number of seconds, at least 0.

    Raises:
        GraphError: 400 naming the field.
    """
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise bad_request(f"{where}.visibleAfterSeconds must be a number of seconds >= 0", code="BadRequest")
    return float(raw)


def check_upn_free(store: TenantStore, upn: str) -> None:
    """A pending user holds its userPrincipalName, as the directory will once it appears."""
    pending = store.extensions.get(EXTENSION)
    if isinstance(pending, PendingUsers) and pending.holds_upn(upn):
        raise bad_request("Another object with the same value for property userPrincipalName already exists.")


def schedule(emulator: Emulator, user: JsonObject, manager_id: str | None, delay: float) -> JsonObject:
    """Hold ``user`` back for ``delay`` emulated seconds; answers the user and its ``visibleAt``."""
    store = emulator.store
    check_upn_free(store, str(user["userPrincipalName"]))
    if store.find_user(str(user["userPrincipalName"])) is not None:
        raise bad_request("Another object with the same value for property userPrincipalName already exists.")
    if not user.get("id"):
        user["id"] = str(uuid.uuid4())
    elif store.directory_object(str(user["id"])) is not None:
        raise bad_request(
            f"Another object with the same value for property id already exists: '{user['id']}'."
        )
    visible_at = emulator.clock.now() + timedelta(seconds=emulator.clock.scaled(delay))
    store.extension(EXTENSION, PendingUsers).pending.append(
        {"user": user, "managerId": manager_id, "visibleAt": iso_utc(visible_at)}
    )
    return {**user, "visibleAt": iso_utc(visible_at)}


def promote_due_users(emulator: Emulator) -> None:
    """Move every pending user whose time has come into the directory (a Graph request hook)."""
    state = emulator.store.extensions.get(EXTENSION)
    if not isinstance(state, PendingUsers) or not state.pending:
        return
    now = emulator.clock.now()
    due = [p for p in state.pending if parse_iso(p["visibleAt"]) <= now]
    for entry in due:
        state.pending.remove(entry)
        try:
            stored = emulator.store.add_user({**entry["user"], "createdDateTime": iso_utc(now)})
            if entry["managerId"] and entry["managerId"] in emulator.store.users:
                emulator.store.set_manager(stored["id"], entry["managerId"])
        except GraphError:
            # the UPN or id was taken meanwhile through another path: the pending copy is dropped,
            # as a provisioning run that collides would fail
            continue


def _pending_entry(state: object, key: str) -> JsonObject | None:
    if not isinstance(state, PendingUsers):
        return None
    wanted = key.casefold()
    for entry in state.pending:
        if entry["user"]["id"] == key or str(entry["user"]["userPrincipalName"]).casefold() == wanted:
            return entry
    return None


@admin_routes.get("/pending-users")
def list_pending(call: Call) -> Response:
    """Users not visible yet, with the time each one appears."""
    promote_due_users(call.emulator)
    state = call.store.extensions.get(EXTENSION)
    pending = state.pending if isinstance(state, PendingUsers) else []
    value = [{**p["user"], "managerId": p["managerId"], "visibleAt": p["visibleAt"]} for p in pending]
    return Response.json({"count": len(value), "value": value})


@admin_routes.post("/pending-users/{user_id}/provision")
def provision_now(call: Call) -> Response:
    """Let one pending user (id or UPN) appear now, as if provisioning caught up early: answers the
    user as the directory holds it. Tests use it to make a lagging user visible when they choose,
    instead of waiting for a delay to pass on a clock they do not control."""
    key = call.params["user_id"]
    entry = _pending_entry(call.store.extensions.get(EXTENSION), key)
    if entry is None:
        raise bad_request(f"pending-users/{key}: no pending user has this id or UPN", code="BadRequest")
    entry["visibleAt"] = iso_utc(call.emulator.clock.now())
    promote_due_users(call.emulator)
    stored = call.store.find_user(str(entry["user"]["id"]))
    if stored is None or stored["userPrincipalName"] != entry["user"]["userPrincipalName"]:
        raise bad_request(
            f"pending-users/{key}: its userPrincipalName or id was taken meanwhile", code="BadRequest"
        )
    return Response.json(stored)
