"""Groups: list, get, create (with Graph's validation), update, delete."""

from __future__ import annotations

from typing import Any

from local.graph_emulator import permissions
from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.odata import (
    count_collection,
    list_collection,
    single_entity,
)
from local.graph_emulator.resources.references import MAX_LINK_CHANGES, resolve_bind_list
from local.graph_emulator.resources.shapes import GROUP, GROUP_PROPERTIES
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore

routes = RouteTable()

REQUIRED_ON_CREATE = ("displayName", "mailEnabled", "mailNickname", "securityEnabled")
STRING_PROPERTIES = frozenset(
    {
        "displayName",
        "description",
        "mailNickname",
        "visibility",
        "classification",
        "membershipRule",
        "membershipRuleProcessingState",
    }
)
BOOLEAN_PROPERTIES = frozenset({"mailEnabled", "securityEnabled", "isAssignableToRole"})
WRITABLE = STRING_PROPERTIES | BOOLEAN_PROPERTIES | {"groupTypes"}
BINDS = ("members@odata.bind", "owners@odata.bind")
NICKNAME_FORBIDDEN = set('@()\\[]";:<>, ')
MAIL_ENABLED_MESSAGE = (
    "The service does not currently support writes of mail-enabled groups. Please ensure that the "
    "mail-enablement property is unset or is set to false."
)


@routes.get("/groups")
def list_groups(call: Call) -> Response:
    return list_collection(call.request, call.store.groups.values(), GROUP, context="groups")


@routes.get("/groups/$count")
def count_groups(call: Call) -> Response:
    return count_collection(call.request, call.store.groups.values(), GROUP)


@routes.get("/groups/{group_id}")
def get_group(call: Call) -> Response:
    group = call.store.require_group(call.params["group_id"])
    return single_entity(call.request, group, GROUP, context="groups")


@routes.post("/groups")
def create_group(call: Call) -> Response:
    body = call.request.json_object()
    changes = writable_changes(body)
    for name in REQUIRED_ON_CREATE:
        if changes.get(name) in (None, ""):
            raise bad_request(f"A value is required for property '{name}' of resource 'Group'.")
    check_mail_enablement(changes)
    members = resolve_bind_list(body, "members@odata.bind", call.store, origin=call.request.origin)
    owners = resolve_bind_list(body, "owners@odata.bind", call.store, origin=call.request.origin)
    if len(members) + len(owners) > MAX_LINK_CHANGES:
        raise bad_request(f"A resource cannot contain more than {MAX_LINK_CHANGES} link changes.")
    if "Unified" in changes.get("groupTypes", []):
        changes["mail"] = f"{changes['mailNickname']}@contoso.com"
    group = call.store.add_group(changes)
    call.store.add_members(group["id"], members)
    if not permissions.is_tenant_admin(call.request.headers):
        call.emulator.app_owned_groups.add(group["id"])  # the app that creates a group owns it
    return single_entity_created(call, group)


def single_entity_created(call: Call, group: JsonObject) -> Response:
    response = single_entity(call.request, group, GROUP, context="groups")
    response.status = 201
    return response


@routes.patch("/groups/{group_id}")
def update_group(call: Call) -> Response:
    store: TenantStore = call.store
    group = store.require_group(call.params["group_id"])
    body = call.request.json_object()
    changes = writable_changes(body)
    for name in ("displayName", "mailNickname"):
        if name in changes and changes[name] in (None, ""):
            raise bad_request(f"A value is required for property '{name}' of resource 'Group'.")
    check_mail_enablement({**group, **changes})
    if "owners@odata.bind" in body:
        resolve_bind_list(body, "owners@odata.bind", store, origin=call.request.origin)
    members = resolve_bind_list(body, "members@odata.bind", store, origin=call.request.origin)
    # all or nothing: membership is checked before any property changes
    store.add_members(group["id"], members)
    group.update(changes)
    return Response.no_content()


@routes.delete("/groups/{group_id}")
def delete_group(call: Call) -> Response:
    call.store.delete_group(call.params["group_id"])
    return Response.no_content()


def writable_changes(body: JsonObject) -> JsonObject:
    """The group properties a create or update sets, type-checked like Graph.

    Raises:
        GraphError: an unknown property or a value of the wrong type (400, naming the property).
    """
    changes: JsonObject = {}
    for name, value in body.items():
        if name in BINDS or name == "@odata.type":
            continue
        if name not in GROUP_PROPERTIES:
            raise GraphError(
                400,
                "BadRequest",
                f"The property '{name}' does not exist on type 'microsoft.graph.group'. Make sure to only "
                "use property names that are defined by the type or mark the type as open type.",
            )
        if name in WRITABLE:
            changes[name] = checked_value(name, value)
    return changes


def checked_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in BOOLEAN_PROPERTIES and not isinstance(value, bool):
        raise GraphError(
            400,
            "BadRequest",
            f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean' (property '{name}').",
        )
    if name in STRING_PROPERTIES and not isinstance(value, str):
        raise bad_request(f"Invalid value specified for property '{name}' of resource 'Group'.")
    if name == "groupTypes" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise bad_request("Invalid value specified for property 'groupTypes' of resource 'Group'.")
    if name == "mailNickname" and not valid_nickname(value):
        raise bad_request("Invalid value specified for property 'mailNickname' of resource 'Group'.")
    if name == "displayName" and len(value) > 256:
        raise bad_request("Invalid value specified for property 'displayName' of resource 'Group'.")
    return value


def valid_nickname(nickname: str) -> bool:
    return 0 < len(nickname) <= 64 and nickname.isascii() and not (set(nickname) & NICKNAME_FORBIDDEN)


def check_mail_enablement(group: JsonObject) -> None:
    """Graph creates mail-enabled groups only as Microsoft 365 ('Unified') groups."""
    unified = "Unified" in (group.get("groupTypes") or [])
    if group.get("mailEnabled") and not unified:
        raise bad_request(MAIL_ENABLED_MESSAGE)
    if unified and group.get("mailEnabled") is False:
        raise bad_request("Invalid value specified for property 'mailEnabled' of resource 'Group'.")
