"""GET /users, /users/{id or UPN}, /users/$count, /users/{id}/manager and /users/{id}/memberOf."""

from __future__ import annotations

from local.graph_emulator.errors import not_found
from local.graph_emulator.odata import (
    check_options,
    context_url,
    is_advanced_query,
    list_collection,
    parse_select,
    project,
    require_count_header,
    single_entity,
)
from local.graph_emulator.odata_filter import parse_filter
from local.graph_emulator.resources.shapes import GROUP, USER
from local.graph_emulator.routing import Call, Response, RouteTable

routes = RouteTable()


@routes.get("/users")
def list_users(call: Call) -> Response:
    return list_collection(call.request, call.store.users.values(), USER, context="users")


@routes.get("/users/$count")
def count_users(call: Call) -> Response:
    request = call.request
    require_count_header(request)
    check_options(request, allowed={"$filter"})
    users = list(call.store.users.values())
    raw_filter = request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, USER.filter_rules, advanced=is_advanced_query(request))
        users = [user for user in users if predicate(user)]
    return Response.text(str(len(users)))


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
