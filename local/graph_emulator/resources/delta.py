"""``GET /groups/delta``: group membership changes, and ``GET /users/delta``: user changes, as
Graph's delta query returns them.

The first call (no token) returns each group (``$filter=id eq '...'``, or every group) with all its
members in ``members@delta``; the answer ends with an ``@odata.deltaLink``. Calling that link returns
only the groups changed since: members added (``{"@odata.type", "id"}``), members removed (with
``"@removed": {"reason": "deleted"}``) and groups deleted (``{"id", "@removed": {"reason":
"deleted"}}``), each member once, as its last change left it. A token the emulator did not issue is
answered 400 (Graph answers a stale or foreign token with an error too).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final
from urllib.parse import quote

from local.graph_emulator.errors import JsonObject, bad_request
from local.graph_emulator.odata import check_options, context_url, parse_select, project
from local.graph_emulator.resources.shapes import USER
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore

routes = RouteTable()

_ID_EQ = re.compile(r"\bid\s+eq\s+'([^']*)'", re.IGNORECASE)


@routes.get("/groups/delta")
def groups_delta(call: Call) -> Response:
    request = call.request
    token = request.query_value("$deltatoken")
    store = call.store
    if token is None:
        wanted = _filtered_ids(request.query_value("$filter"))
        groups = [g for gid, g in store.groups.items() if wanted is None or gid in wanted]
        value = [
            _group_entry(store, g, [_member(store, oid) for oid in store.member_ids(g["id"])]) for g in groups
        ]
    else:
        sequence, wanted = _decode(token)
        if sequence > store.change_sequence:
            raise bad_request("The delta token is not valid for this tenant.", code="syncStateNotFound")
        value = _changes(store, sequence, wanted)
    link_token = _encode(store.change_sequence, wanted)
    path = request.path.split("?")[0]
    return Response.json(
        {
            "@odata.context": context_url(request, "groups(members)"),
            "value": value,
            "@odata.deltaLink": f"{request.origin}{path}?$deltatoken={quote(link_token)}",
        }
    )


def _filtered_ids(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    ids = frozenset(_ID_EQ.findall(text))
    if not ids:
        raise bad_request(
            "Only 'id eq' filters are supported on groups delta.", code="Request_UnsupportedQuery"
        )
    return ids


def _changes(store: TenantStore, sequence: int, wanted: frozenset[str] | None) -> list[JsonObject]:
    last: dict[str, dict[str, str]] = {}
    deleted: set[str] = set()
    for _, group_id, kind, object_id in store.changes_since(sequence):
        if wanted is not None and group_id not in wanted:
            continue
        if kind == "deleted":
            deleted.add(group_id)
        else:
            last.setdefault(group_id, {})[object_id] = kind
    value: list[JsonObject] = [{"id": gid, "@removed": {"reason": "deleted"}} for gid in sorted(deleted)]
    for group_id, members in last.items():
        if group_id in deleted or group_id not in store.groups:
            continue
        delta = [
            _member(store, oid)
            if kind == "add"
            else {**_member(store, oid), "@removed": {"reason": "deleted"}}
            for oid, kind in members.items()
        ]
        value.append(_group_entry(store, store.groups[group_id], delta))
    return value


def _group_entry(store: TenantStore, group: JsonObject, members: list[JsonObject]) -> JsonObject:
    return {"id": group["id"], "displayName": group.get("displayName"), "members@delta": members}


def _member(store: TenantStore, object_id: str) -> JsonObject:
    kind = "user" if store.is_user(object_id) else "group"
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id}


def _encode(sequence: int, wanted: frozenset[str] | None) -> str:
    raw = json.dumps({"s": sequence, "ids": sorted(wanted) if wanted is not None else None})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[int, frozenset[str] | None]:
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        sequence, ids = int(raw["s"]), raw["ids"]
    except (ValueError, KeyError, TypeError):
        raise bad_request("The delta token is not valid.", code="syncStateNotFound") from None
    return sequence, (frozenset(str(i) for i in ids) if ids is not None else None)


# --- users -----------------------------------------------------------------------------------------

USERS_DELTA_PAGE: Final = 200


@routes.get("/users/delta")
def users_delta(call: Call) -> Response:
    """``GET /users/delta``: every user (paged) then a delta link; from a delta link, the users
    created, changed or deleted since, each once. ``$deltatoken=latest`` answers no users and a
    link from now. ``$select`` is given on the first call and kept in the links, as Graph does."""
    request = call.request
    store = call.store
    delta_token, skip_token = request.query_value("$deltatoken"), request.query_value("$skiptoken")
    if delta_token is not None and skip_token is not None:
        raise bad_request("Give $deltatoken or $skiptoken, not both.", code="BadRequest")
    if skip_token is not None:
        state = _decode_users(skip_token)
    elif delta_token == "latest":
        state = {"s": store.user_sequence, "from": store.user_sequence, "o": -1, "sel": _users_select(call)}
    elif delta_token is not None:
        state = _decode_users(delta_token)
        state = {"s": store.user_sequence, "from": state["s"], "o": 0, "sel": state["sel"]}
    else:
        state = {"s": store.user_sequence, "from": None, "o": 0, "sel": _users_select(call)}
    if state["from"] is not None and state["from"] > store.user_sequence:
        raise bad_request("The delta token is not valid for this tenant.", code="syncStateNotFound")
    select = state["sel"]
    if state["o"] < 0:
        entries: list[JsonObject] = []
    elif state["from"] is None:  # the initial round: every user
        entries = [project(u, USER, select) for u in store.users.values()]
    else:
        changed = store.users_changed_since(state["from"], until=state["s"])
        entries = [
            project(store.users[uid], USER, select)
            if kind == "updated" and uid in store.users
            else {"id": uid, "@removed": {"reason": "deleted"}}
            for uid, kind in changed.items()
        ]
    offset = max(0, state["o"])
    page = entries[offset : offset + USERS_DELTA_PAGE]
    base = f"{request.origin}{request.path.split('?')[0]}"
    body: JsonObject = {"@odata.context": context_url(request, "users"), "value": page}
    if offset + USERS_DELTA_PAGE < len(entries):
        next_state = {**state, "o": offset + USERS_DELTA_PAGE}
        body["@odata.nextLink"] = f"{base}?$skiptoken={quote(_encode_users(next_state))}"
    else:
        link_token = _encode_users({"s": state["s"], "sel": select})
        body["@odata.deltaLink"] = f"{base}?$deltatoken={quote(link_token)}"
    return Response.json(body)


def _users_select(call: Call) -> list[str] | None:
    check_options(call.request, ("$select", "$deltatoken", "$skiptoken"))
    return parse_select(call.request, USER)


def _encode_users(state: JsonObject) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode_users(token: str) -> JsonObject:
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        state = {"s": int(raw["s"]), "sel": raw["sel"]}
        if "o" in raw:
            state.update({"o": int(raw["o"]), "from": None if raw["from"] is None else int(raw["from"])})
        if state["sel"] is not None and not all(isinstance(n, str) for n in state["sel"]):
            raise TypeError("sel")
    except (ValueError, KeyError, TypeError):
        raise bad_request("The delta token is not valid.", code="syncStateNotFound") from None
    return state
