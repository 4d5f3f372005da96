"""Group membership: list members, add one by $ref, remove one by $ref."""

from __future__ import annotations

from local.graph_emulator.errors import bad_request
from local.graph_emulator.odata import ResourceShape, list_collection, require_count_header
from local.graph_emulator.odata_filter import FilterRules
from local.graph_emulator.resources.references import reference_url, resolve_reference
from local.graph_emulator.resources.shapes import DIRECTORY_OBJECT, shape_of
from local.graph_emulator.routing import Call, Response, RouteTable

routes = RouteTable()

REFERENCE = ResourceShape(
    "directoryObject", frozenset({"@odata.id"}), ("@odata.id",), FilterRules("DirectoryObject", {})
)


@routes.get("/groups/{group_id}/members")
def list_members(call: Call) -> Response:
    members = call.store.member_pages(call.params["group_id"])
    return list_collection(
        call.request, members, DIRECTORY_OBJECT, context="directoryObjects", item_shape=shape_of
    )


@routes.get("/groups/{group_id}/members/$count")
def count_members(call: Call) -> Response:
    require_count_header(call.request)
    return Response.text(str(len(call.store.member_ids(call.params["group_id"]))))


@routes.get("/groups/{group_id}/members/$ref")
def list_member_references(call: Call) -> Response:
    origin = call.request.origin
    refs = [
        {"@odata.id": reference_url(origin, oid)} for oid in call.store.member_ids(call.params["group_id"])
    ]
    return list_collection(call.request, refs, REFERENCE, context="directoryObjects")


@routes.post("/groups/{group_id}/members/$ref")
def add_member(call: Call) -> Response:
    group = call.store.require_group(call.params["group_id"])
    body = call.request.json_object()
    if "@odata.id" not in body:
        raise bad_request("A value is required for property '@odata.id' of the reference.")
    object_id = resolve_reference(body["@odata.id"], call.store, origin=call.request.origin)
    call.store.add_members(group["id"], [object_id])
    return Response.no_content()


@routes.delete("/groups/{group_id}/members/{member_id}/$ref")
def remove_member(call: Call) -> Response:
    call.store.remove_member(call.params["group_id"], call.params["member_id"])
    return Response.no_content()


@routes.delete("/groups/{group_id}/members/$ref")
def remove_member_by_query(call: Call) -> Response:
    """The newer form: DELETE .../members/$ref?$id=<directoryObject URL>."""
    reference = call.request.query_value("$id") or call.request.query_value("@id")
    if reference is None:
        raise bad_request("The query parameter '$id' is required to remove a member by reference.")
    group = call.store.require_group(call.params["group_id"])
    object_id = resolve_reference(reference, call.store, origin=call.request.origin)
    call.store.remove_member(group["id"], object_id)
    return Response.no_content()
