"""Temporary Access Pass: /users/{id}/authentication/temporaryAccessPassMethods, as on Graph v1.0.

A user holds at most one TAP: creating one deletes the previous one (Graph's documented rule). The
pass itself is returned only in the create response; the emulator keeps just its sha256 so the
admin API (``GET /_emulator/taps``) lets tests match an e-mailed pass against the issued one.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from local.graph_emulator.clock import iso_utc, parse_iso
from local.graph_emulator.errors import GraphError, JsonObject, not_found
from local.graph_emulator.odata import context_url
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import register_extension

routes = RouteTable()
admin_routes = RouteTable()

ODATA_TYPE = "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
MIN_LIFETIME, MAX_LIFETIME = 10, 43_200
# The Temporary Access Pass policy's defaults (Entra admin center): one hour, multi-use, 8 characters.
DEFAULT_LIFETIME = 60
DEFAULT_USABLE_ONCE = False
PASS_LENGTH = 8
PASS_ALPHABET = string.ascii_letters + string.digits + "+-!@#$%&*?"
READ_ONLY = frozenset(
    {"id", "temporaryAccessPass", "createdDateTime", "isUsable", "methodUsabilityReason", "@odata.type"}
)
WRITABLE = frozenset({"isUsableOnce", "lifetimeInMinutes", "startDateTime"})
BASE = "/users/{user_id}/authentication/temporaryAccessPassMethods"


@dataclass
class TapState:
    """Every TAP ever issued in the tenant (active or deleted), without the pass values."""

    issued: list[JsonObject] = field(default_factory=list)

    def active_for(self, user_id: str) -> JsonObject | None:
        return next((t for t in self.issued if t["userId"] == user_id and t["deletedDateTime"] is None), None)

    def issue(self, record: JsonObject, now: datetime) -> None:
        """Add a TAP, deleting the user's current one first (one TAP per user)."""
        current = self.active_for(record["userId"])
        if current is not None:
            self.delete(current, now, reason="replaced")
        self.issued.append(record)

    def delete(self, record: JsonObject, now: datetime, *, reason: str) -> None:
        record["deletedDateTime"] = iso_utc(now)
        record["deletedReason"] = reason

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.issued)

    def to_json(self) -> JsonObject:
        return {"issued": self.issued}

    @classmethod
    def from_json(cls, data: JsonObject) -> TapState:
        return cls(issued=list(data.get("issued", [])))


register_extension("tap", TapState.from_json)


def tap_state(call: Call) -> TapState:
    return call.store.extension("tap", TapState)


@routes.post(BASE)
def create_tap(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    settings = parse_create_body(call.request.json_object())
    now = call.emulator.clock.now()
    start = settings["startDateTime"] or now
    secret = "".join(secrets.choice(PASS_ALPHABET) for _ in range(PASS_LENGTH))
    record: JsonObject = {
        "id": str(uuid.uuid4()),
        "userId": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "createdDateTime": iso_utc(now),
        "startDateTime": iso_utc(start),
        "lifetimeInMinutes": settings["lifetimeInMinutes"],
        "isUsableOnce": settings["isUsableOnce"],
        "secretSha256": hashlib.sha256(secret.encode("utf-8")).hexdigest(),
        "deletedDateTime": None,
        "deletedReason": None,
    }
    tap_state(call).issue(record, now)
    body = {
        "@odata.context": context_url(
            call.request, f"users('{user['id']}')/authentication/temporaryAccessPassMethods/$entity"
        ),
        **graph_view(record, now, secret=secret),
    }
    return Response.json(body, status=201)


@routes.get(BASE)
def list_taps(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    now = call.emulator.clock.now()
    active = tap_state(call).active_for(user["id"])
    return Response.json(
        {
            "@odata.context": context_url(
                call.request, f"users('{user['id']}')/authentication/temporaryAccessPassMethods"
            ),
            "value": [graph_view(active, now)] if active else [],
        }
    )


@routes.get(BASE + "/{method_id}")
def get_tap(call: Call) -> Response:
    record = require_tap(call)
    body = {
        "@odata.context": context_url(
            call.request,
            f"users('{record['userId']}')/authentication/temporaryAccessPassMethods/$entity",
        ),
        **graph_view(record, call.emulator.clock.now()),
    }
    return Response.json(body)


@routes.delete(BASE + "/{method_id}")
def delete_tap(call: Call) -> Response:
    record = require_tap(call)
    tap_state(call).delete(record, call.emulator.clock.now(), reason="deleted")
    return Response.no_content()


def require_tap(call: Call) -> JsonObject:
    """The user's active TAP with the id in the path; 404 for an unknown user or method."""
    user = call.store.require_user(call.params["user_id"])
    active = tap_state(call).active_for(user["id"])
    if active is None or active["id"] != call.params["method_id"]:
        raise not_found(call.params["method_id"])
    return active


def parse_create_body(body: JsonObject) -> JsonObject:
    """The create request's settings with the policy's defaults filled in.

    Raises:
        GraphError: an unknown property, a value of the wrong type or a lifetime out of range.
    """
    for name in body:
        if name not in WRITABLE and name not in READ_ONLY:
            raise GraphError(
                400,
                "BadRequest",
                f"The property '{name}' does not exist on type "
                "'microsoft.graph.temporaryAccessPassAuthenticationMethod'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type.",
            )
    lifetime = body.get("lifetimeInMinutes")
    lifetime = DEFAULT_LIFETIME if lifetime is None else lifetime
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise conversion_error(lifetime, "Edm.Int32")
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise GraphError(
            400,
            "badRequest",
            "Invalid LifetimeInMinutes specified. "
            f"The valid range between {MIN_LIFETIME} and {MAX_LIFETIME}.",
        )
    once = body.get("isUsableOnce")
    once = DEFAULT_USABLE_ONCE if once is None else once
    if not isinstance(once, bool):
        raise conversion_error(once, "Edm.Boolean")
    return {"lifetimeInMinutes": lifetime, "isUsableOnce": once, "startDateTime": parse_start(body)}


def parse_start(body: JsonObject) -> datetime | None:
    raw = body.get("startDateTime")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise conversion_error(raw, "Edm.DateTimeOffset")
    try:
        return parse_iso(raw)
    except ValueError:
        raise conversion_error(raw, "Edm.DateTimeOffset") from None


def conversion_error(value: Any, edm_type: str) -> GraphError:
    return GraphError(
        400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm_type}'."
    )


def usability(record: JsonObject, now: datetime) -> str:
    """Graph's methodUsabilityReason for a TAP at ``now``."""
    start = parse_iso(record["startDateTime"])
    if now < start:
        return "NotYetValid"
    if now >= start + timedelta(minutes=record["lifetimeInMinutes"]):
        return "Expired"
    return "EnabledByPolicy"


def graph_view(record: JsonObject, now: datetime, *, secret: str | None = None) -> JsonObject:
    """The TAP as Graph returns it; the pass is only present in the create response."""
    reason = usability(record, now)
    return {
        "@odata.type": ODATA_TYPE,
        "id": record["id"],
        "temporaryAccessPass": secret,
        "createdDateTime": record["createdDateTime"],
        "startDateTime": record["startDateTime"],
        "lifetimeInMinutes": record["lifetimeInMinutes"],
        "isUsableOnce": record["isUsableOnce"],
        "isUsable": reason == "EnabledByPolicy",
        "methodUsabilityReason": reason,
    }


@admin_routes.get("/taps")
def list_issued_taps(call: Call) -> Response:
    """Per user: how many TAPs were created, which is active, and each one's sha256 (never the pass)."""
    wanted = call.request.query_value("userId")
    per_user: dict[str, JsonObject] = {}
    for record in tap_state(call).issued:
        if wanted is not None and wanted not in (record["userId"], record["userPrincipalName"]):
            continue
        entry = per_user.setdefault(
            record["userId"],
            {
                "userId": record["userId"],
                "userPrincipalName": record["userPrincipalName"],
                "created": 0,
                "activeId": None,
                "taps": [],
            },
        )
        entry["created"] += 1
        entry["taps"].append(dict(record))
        if record["deletedDateTime"] is None:
            entry["activeId"] = record["id"]
    users = list(per_user.values())
    return Response.json({"count": sum(u["created"] for u in users), "value": users})
