"""Per-user MFA (the legacy "enabled / enforced" switch), beta only as on Graph:

- ``GET /beta/users/{id}/authentication/requirements`` answers the user's ``perUserMfaState``
  (``disabled`` unless set);
- ``PATCH /beta/users/{id}/authentication/requirements`` with ``{"perUserMfaState": ...}`` sets it;
  as Graph documents, ``enabled`` for a user who already registered an MFA method (a ``STRONG``
  method of the registration report) becomes ``enforced``.

``/v1.0`` does not serve these routes (Graph's "Resource not found for the segment" 400). The admin
API sets a state exactly (``PUT /_emulator/users/{id}/per-user-mfa``) and lists every user whose
state is not ``disabled`` (``GET /_emulator/per-user-mfa``); the states are kept in snapshots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from local.graph_emulator.errors import JsonObject, bad_request
from local.graph_emulator.odata import check_options, context_url
from local.graph_emulator.resources.registration import is_mfa_registered
from local.graph_emulator.routing import BETA, Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

__all__ = ["BASE", "EXTENSION", "STATES", "PerUserMfa", "admin_routes", "routes", "set_state", "state_of"]

routes = RouteTable(versions=(BETA,))
admin_routes = RouteTable()

EXTENSION: Final = "perUserMfa"
BASE: Final = "/users/{user_id}/authentication/requirements"
PROPERTY: Final = "perUserMfaState"
DISABLED: Final = "disabled"
ENABLED: Final = "enabled"
ENFORCED: Final = "enforced"
STATES: Final = (DISABLED, ENABLED, ENFORCED)
ODATA_TYPE_NAME: Final = "microsoft.graph.strongAuthenticationRequirements"


@dataclass
class PerUserMfa:
    """Per user id, the per-user MFA state when it is not ``disabled``."""

    by_user: dict[str, str] = field(default_factory=dict)

    def count(self) -> int:
        """How many items the admin state reports (users enabled or enforced)."""
        return len(self.by_user)

    def to_json(self) -> JsonObject:
        return {"byUser": dict(self.by_user)}

    @classmethod
    def from_json(cls, data: JsonObject) -> PerUserMfa:
        raw = data.get("byUser", {})
        return cls(by_user={str(k): str(v) for k, v in raw.items() if v in STATES and v != DISABLED})


register_extension(EXTENSION, PerUserMfa.from_json)


def state_of(store: TenantStore, user_id: str) -> str:
    """A user's per-user MFA state (``disabled`` when never set); reading creates no state."""
    state = store.extensions.get(EXTENSION)
    return state.by_user.get(user_id, DISABLED) if isinstance(state, PerUserMfa) else DISABLED


def set_state(store: TenantStore, user_id: str, state: str) -> None:
    """Set a user's state exactly (``disabled`` forgets the user).

    Raises:
        ValueError: not one of ``STATES``.
    """
    if state not in STATES:
        raise ValueError(f"per-user MFA state must be one of {', '.join(STATES)}, got {state!r}")
    by_user = store.extension(EXTENSION, PerUserMfa).by_user
    if state == DISABLED:
        by_user.pop(user_id, None)
    else:
        by_user[user_id] = state


@routes.get(BASE)
def get_requirements(call: Call) -> Response:
    check_options(call.request, allowed=())
    key = call.params["user_id"]
    user = call.store.require_user(key)
    fragment = f"users('{quote(key, safe='')}')/authentication/requirements/$entity"
    return Response.json(
        {
            "@odata.context": context_url(call.request, fragment),
            PROPERTY: state_of(call.store, str(user["id"])),
        }
    )


@routes.patch(BASE)
def patch_requirements(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    wanted = parse_patch(call.request.json_object())
    if wanted == ENABLED and is_mfa_registered(call.store, str(user["id"])):
        wanted = ENFORCED  # Graph: a user who already registered MFA goes straight to enforced
    set_state(call.store, str(user["id"]), wanted)
    return Response.no_content()


def parse_patch(body: JsonObject) -> str:
    """The state a PATCH body asks for.

    Raises:
        GraphError: 400 BadRequest naming an unknown property, the missing one or an invalid value.
    """
    unknown = [name for name in body if name != PROPERTY]
    if unknown:
        raise bad_request(
            f"The property '{unknown[0]}' does not exist on type '{ODATA_TYPE_NAME}'. Make sure to only "
            "use property names that are defined by the type.",
            code="BadRequest",
        )
    if PROPERTY not in body:
        raise bad_request(f"The property '{PROPERTY}' is required.", code="BadRequest")
    value = body[PROPERTY]
    if not isinstance(value, str) or value not in STATES:
        raise bad_request(
            f"Invalid value {json.dumps(value)} for property '{PROPERTY}'; expected one of: "
            f"{', '.join(STATES)}.",
            code="BadRequest",
        )
    return value


def _admin_entry(user: JsonObject, state: str) -> JsonObject:
    return {"id": user["id"], "userPrincipalName": user["userPrincipalName"], "state": state}


@admin_routes.put("/users/{user_id}/per-user-mfa")
def admin_put(call: Call) -> Response:
    """Set a user's state exactly (no enabled→enforced promotion): ``{"state": ...}``."""
    user = call.store.require_user(call.params["user_id"])
    body: Any = call.request.json_object()
    unknown = sorted(set(body) - {"state"})
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(unknown)}", code="BadRequest")
    state = body.get("state")
    if not isinstance(state, str) or state not in STATES:
        raise bad_request(f"state must be one of {', '.join(STATES)}, got {state!r}", code="BadRequest")
    set_state(call.store, str(user["id"]), state)
    return Response.json(_admin_entry(user, state))


@admin_routes.get("/per-user-mfa")
def admin_list(call: Call) -> Response:
    """Every user whose state is not ``disabled``, in directory order."""
    value = [
        _admin_entry(user, state)
        for user in call.store.users.values()
        if (state := state_of(call.store, str(user["id"]))) != DISABLED
    ]
    return Response.json({"count": len(value), "value": value})
