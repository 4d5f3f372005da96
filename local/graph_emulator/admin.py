"""The test-facing admin API under /_emulator: reset, request log, faults, direct objects, snapshots.

Writes here never touch the write budget and are not logged. A later feature adds its admin routes
(inject sign-ins, read the outbox ...) in its own module with its own ``RouteTable``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.faults import FaultRule
from local.graph_emulator.resources import provisioning
from local.graph_emulator.resources.shapes import GROUP_PROPERTIES, USER_PROPERTIES
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import utc_now_iso

if TYPE_CHECKING:
    from local.graph_emulator.app import Emulator

routes = RouteTable()


def invalid(message: str) -> GraphError:
    return bad_request(message, code="BadRequest")


def optional_body(call: Call) -> Any:
    return call.request.json() if call.request.body.strip() else None


@routes.get("/health")
def health(call: Call) -> Response:
    return Response.json({"status": "ok"})


@routes.post("/reset")
def reset(call: Call) -> Response:
    emulator: Emulator = call.emulator
    try:
        config = emulator.startup_config.updated_from_json(optional_body(call))
        emulator.reset(config)
    except (ValueError, OSError) as exc:
        raise invalid(f"reset: {exc}") from None
    return Response.json(emulator.state())


@routes.get("/state")
def state(call: Call) -> Response:
    return Response.json(call.emulator.state())


@routes.get("/requests")
def list_requests(call: Call) -> Response:
    method, path = call.request.query_value("method"), call.request.query_value("path")
    try:
        entries = call.emulator.requests.entries(method=method, path=path)
    except Exception as exc:  # re.error from a bad path regex
        raise invalid(f"path is not a valid regular expression: {exc}") from None
    return Response.json({"count": len(entries), "value": entries})


@routes.delete("/requests")
def clear_requests(call: Call) -> Response:
    call.emulator.requests.clear()
    return Response.no_content()


@routes.post("/faults")
def add_faults(call: Call) -> Response:
    raw = call.request.json()
    rules = []
    for index, item in enumerate(raw if isinstance(raw, list) else [raw]):
        try:
            rules.append(FaultRule.from_json(item))
        except ValueError as exc:
            raise invalid(f"faults[{index}]: {exc}") from None
    for rule in rules:
        call.emulator.faults.add(rule)
    return Response.json({"value": call.emulator.faults.to_json()}, status=201)


@routes.get("/faults")
def list_faults(call: Call) -> Response:
    return Response.json({"value": call.emulator.faults.to_json()})


@routes.delete("/faults")
def clear_faults(call: Call) -> Response:
    call.emulator.faults.clear()
    return Response.no_content()


def _add_one_or_many(call: Call, add: Callable[[Call, Any, int], JsonObject]) -> Response:
    """A body that is one object creates one (answered as it); a list creates each (``{"value": [...]}``)."""
    raw = call.request.json()
    items = raw if isinstance(raw, list) else [raw]
    created = [add(call, item, index) for index, item in enumerate(items)]
    return Response.json({"value": created} if isinstance(raw, list) else created[0], status=201)


@routes.post("/users")
def add_users(call: Call) -> Response:
    return _add_one_or_many(call, add_user)


def add_user(call: Call, raw: Any, index: int) -> JsonObject:
    where = f"users[{index}]"
    if not isinstance(raw, dict):
        raise invalid(f"{where} must be an object")
    unknown = set(raw) - USER_PROPERTIES - {"manager", "visibleAfterSeconds"}
    if unknown:
        raise invalid(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    upn = raw.get("userPrincipalName")
    if not isinstance(upn, str) or "@" not in upn:
        raise invalid(f"{where}.userPrincipalName is required and must look like name@domain")
    store = call.store
    manager = None
    if raw.get("manager") is not None:
        manager = store.find_user(str(raw["manager"]))
        if manager is None:
            raise invalid(f"{where}.manager: no user has the id or UPN {raw['manager']!r}")
    user: JsonObject = dict.fromkeys(USER_PROPERTIES)
    user.update(
        {
            "displayName": upn.split("@")[0],
            "mail": upn,
            "mailNickname": upn.split("@")[0],
            "accountEnabled": True,
            "businessPhones": [],
            "userType": "Member",
            "createdDateTime": utc_now_iso(),
        }
    )
    user.update({k: v for k, v in raw.items() if k not in ("manager", "visibleAfterSeconds")})
    if raw.get("visibleAfterSeconds") is not None:
        delay = provisioning.parse_delay(raw["visibleAfterSeconds"], where)
        return provisioning.schedule(call.emulator, user, manager["id"] if manager else None, delay)
    provisioning.check_upn_free(store, upn)
    stored: JsonObject = store.add_user(user)
    if manager is not None:
        store.set_manager(stored["id"], manager["id"])
    return stored


@routes.patch("/users/{user_id}")
def update_user(call: Call) -> Response:
    """Change a user's properties as HR or an admin would (``department``, ``country``, ...): the
    change shows in ``/users/delta``. The id and userPrincipalName cannot change."""
    raw = call.request.json()
    if not isinstance(raw, dict) or not raw:
        raise invalid("the body must be an object of user properties")
    unknown = set(raw) - USER_PROPERTIES
    fixed = {"id", "userPrincipalName"} & set(raw)
    if unknown:
        raise invalid(f"unknown user fields: {', '.join(sorted(unknown))}")
    if fixed:
        raise invalid(f"{', '.join(sorted(fixed))} cannot be changed")
    for name, value in raw.items():
        if not (value is None or isinstance(value, str | bool) or _strings(value)):
            raise invalid(f"{name} must be a string, a boolean, a list of strings or null")
    return Response.json(call.store.update_user(call.params["user_id"], raw))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


@routes.post("/groups")
def add_groups(call: Call) -> Response:
    return _add_one_or_many(call, add_group)


def add_group(call: Call, raw: Any, index: int) -> JsonObject:
    where = f"groups[{index}]"
    if not isinstance(raw, dict):
        raise invalid(f"{where} must be an object")
    unknown = set(raw) - GROUP_PROPERTIES - {"members", "ownedByApp"}
    if unknown:
        raise invalid(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    name = raw.get("displayName")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.displayName is required")
    store = call.store
    member_ids = []
    for key in raw.get("members") or []:
        found = store.find_user(str(key)) or store.groups.get(str(key))
        if found is None:
            raise invalid(f"{where}.members: no user or group has the id or UPN {key!r}")
        member_ids.append(found["id"])
    nickname = "".join(ch for ch in name.lower() if ch.isalnum()) or "group"
    owned = raw.get("ownedByApp", False)
    if not isinstance(owned, bool):
        raise invalid(f"{where}.ownedByApp must be true or false")
    group: JsonObject = store.add_group(
        {"mailNickname": nickname, **{k: v for k, v in raw.items() if k not in ("members", "ownedByApp")}}
    )
    store.members[group["id"]].update(dict.fromkeys(member_ids))
    if owned:  # as if the app had created it (POST /groups): Group.Create may rename or delete it
        call.emulator.app_owned_groups.add(group["id"])
    return {**group, "members": list(store.members[group["id"]])}


@routes.post("/snapshot")
def snapshot(call: Call) -> Response:
    body = call.request.json_object()
    path = body.get("path")
    if not isinstance(path, str) or not path:
        raise invalid("snapshot.path is required: the file to write the tenant to")
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(call.store.to_json(), indent=1), encoding="utf-8")
    except OSError as exc:
        raise invalid(f"snapshot.path cannot be written: {exc}") from None
    return Response.json({"path": str(target), **call.store.counts()})
