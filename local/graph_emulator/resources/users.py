"""GET /users, /users/{id or UPN}, /users/$count, /users/{id}/manager and /users/{id}/memberOf."""

from __future__ import annotations

from local.graph_emulator.errors import not_found
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
from local.graph_emulator.routing import Call, Response, RouteTable

routes = RouteTable()


@routes.get("/users")
def list_users(call: Call) -> Response:
    return list_collection(call.request, call.store.users.values(), USER, context="users")


@routes.get("/users/$count")
def count_users(call: Call) -> Response:
    return count_collection(call.request, call.store.users.values(), USER)


@routes.get("/users/{user_id}")
def get_user(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    return single_entity(call.request, user, USER, context="users")


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
