"""GET /users, /users/{id or UPN}, /users/$count, /users/{id}/manager and /users/{id}/memberOf."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final

from local.graph_emulator.errors import bad_request, not_found
from local.graph_emulator.odata import (
    check_options,
    context_url,
    count_collection,
    list_collection,
    parse_select,
    project,
    single_entity,
)
from local.graph_emulator.resources.shapes import GROUP, USER
from local.graph_emulator.routing import Call, Request, Response, RouteTable

routes = RouteTable()


@routes.get("/users")
def list_users(call: Call) -> Response:
    return list_collection(call.request, call.store.users.values(), USER, context="users")


@routes.get("/users/$count")
def count_users(call: Call) -> Response:
    return count_collection(call.request, call.store.users.values(), USER)


@routes.get("/users/{user_id}")
def get_user(call: Call) -> Response:
    """One user; ``$expand=manager`` or ``$expand=manager($select=...)`` adds its direct manager
    (absent when none is set), as Graph does for a single user (``$levels`` is not emulated)."""
    user = call.store.require_user(call.params["user_id"])
    expand = call.request.query_value("$expand")
    if expand is None:
        return single_entity(call.request, user, USER, context="users")
    manager_select = _manager_expansion(expand)
    plain = replace(call.request, query=[(k, v) for k, v in call.request.query if k != "$expand"])
    body = dict(single_entity(plain, user, USER, context="users").body)
    manager = call.store.manager_of(user["id"])
    if manager is not None:
        inner = Request("GET", "", query=[("$select", manager_select)] if manager_select else [])
        selected = project(manager, USER, parse_select(inner, USER))
        body["manager"] = {"@odata.type": USER.odata_type, **selected}
    return Response.json(body)


_EXPAND_MANAGER: Final = re.compile(r"^manager(?:\(\$select=([A-Za-z0-9_,]+)\))?$", re.IGNORECASE)


def _manager_expansion(expand: str) -> str | None:
    """The ``$select`` inside ``$expand=manager(...)`` (None: the manager's default properties).

    Raises:
        GraphError: anything but the manager is expanded (not emulated: Graph's 400 wording).
    """
    match = _EXPAND_MANAGER.match(expand.strip())
    if match is None:
        raise bad_request(
            f"The query option '$expand={expand}' is not supported by the emulator (only manager, "
            "optionally with $select).",
            code="BadRequest",
        )
    return match.group(1)


@routes.get("/users/{user_id}/manager")
def get_manager(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    manager = call.store.manager_of(user["id"])
    if manager is None:
        raise not_found("manager")
    check_options(call.request, allowed={"$select"})
    select = parse_select(call.request, USER)
    return Response.json(
        {
            "@odata.context": context_url(call.request, "directoryObjects/$entity"),
            "@odata.type": USER.odata_type,
            **project(manager, USER, select),
        }
    )


@routes.get("/users/{user_id}/memberOf")
def list_member_of(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    groups = call.store.groups_of(user["id"])
    return list_collection(
        call.request, groups, GROUP, context="directoryObjects", item_shape=lambda _: GROUP
    )
