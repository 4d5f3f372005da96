"""Change-notification subscriptions on groups, as Graph keeps them.

- ``POST /subscriptions``: ``resource`` ``groups/{id}`` (the group must exist), ``changeType`` from
  ``created,updated,deleted``, ``notificationUrl`` (https, or http on the loopback), optional
  ``lifecycleNotificationUrl`` and ``clientState`` (≤ 128 characters), ``expirationDateTime`` in the
  future and at most 41,760 minutes away (Graph's limit for groups). Before answering 201, the
  emulator makes the **validation call** Graph makes: ``POST <url>?validationToken=<token>`` (the
  token URL-encoded, with spaces and punctuation, as Graph's are) to each URL; anything but a 200
  whose body is exactly the token, within 10 s (divided by the time scale), refuses the subscription
  with 400.
- ``GET /subscriptions`` and ``/subscriptions/{id}``; ``PATCH`` (``expirationDateTime``, or a new
  ``notificationUrl``, validated again); ``DELETE``; ``POST /subscriptions/{id}/reauthorize``.
- Expired subscriptions are gone: not listed, 404 on read or renewal, never notified.
- **Change notifications**: whenever membership of a subscribed group changes through any Graph
  call (WaveGuard's own included), one ``updated`` notification per change is POSTed to the
  subscriber (``deleted`` when the group is deleted), with Graph's fields: ``subscriptionId``,
  ``subscriptionExpirationDateTime``, ``clientState``, ``changeType``, ``resource``, ``tenantId`` and
  ``resourceData`` (``members@delta`` naming the member). Notifications from one request go in one
  POST per URL. A subscription waiting for reauthorization gets none until it is reauthorized.
- **Lifecycle notifications** on demand: ``POST /_emulator/subscriptions/{id}/lifecycle``
  ``{"event": "reauthorizationRequired" | "subscriptionRemoved" | "missed"}`` POSTs Graph's lifecycle
  payload to ``lifecycleNotificationUrl``; ``subscriptionRemoved`` also deletes the subscription and
  ``reauthorizationRequired`` holds its notifications until ``reauthorize``.
  ``GET /_emulator/notifications`` lists what was sent (the URLs without their query string).
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote_plus, urlsplit

from local.graph_emulator.clock import iso_utc, parse_iso
from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.odata import context_url
from local.graph_emulator.outbound import post
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

if TYPE_CHECKING:
    from local.graph_emulator.app import Emulator

routes = RouteTable()
admin_routes = RouteTable()

TENANT_ID: Final = "7a1e0e1e-5eed-4c0d-a7e5-000000000001"
APPLICATION_ID: Final = "0a7e1e55-0000-4000-8000-00000000a991"
MAX_GROUP_MINUTES: Final = 41760
VALIDATION_TIMEOUT_SECONDS: Final = 10.0
MAX_CLIENT_STATE: Final = 128
CHANGE_TYPES: Final = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_PUBLIC: Final = (
    "id",
    "resource",
    "applicationId",
    "changeType",
    "clientState",
    "notificationUrl",
    "lifecycleNotificationUrl",
    "expirationDateTime",
    "creatorId",
    "includeResourceData",
    "latestSupportedTlsVersion",
    "encryptionCertificate",
    "encryptionCertificateId",
    "notificationUrlAppId",
    "notificationQueryOptions",
)
_WRITABLE: Final = frozenset(_PUBLIC) - {"id", "applicationId", "creatorId"}


@dataclass
class Subscriptions:
    """The tenant's subscriptions by id (expired ones are dropped when next looked at)."""

    items: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        return len(self.items)

    def to_json(self) -> JsonObject:
        return {"items": self.items}

    @classmethod
    def from_json(cls, data: JsonObject) -> Subscriptions:
        return cls(items=dict(data.get("items", {})))


register_extension("subscriptions", Subscriptions.from_json)


def _subscriptions(emulator: Emulator) -> Subscriptions:
    state = emulator.store.extension("subscriptions", Subscriptions)
    now = emulator.clock.now()
    for sub_id, item in list(state.items.items()):
        if parse_iso(item["expirationDateTime"]) <= now:
            del state.items[sub_id]
    return state


def _invalid(message: str) -> GraphError:
    return bad_request(message, code="InvalidRequest")


def _not_found(sub_id: str) -> GraphError:
    return GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{sub_id}'.")


def _view(call: Call, item: JsonObject, *, entity: bool = True) -> JsonObject:
    body = {name: item.get(name) for name in _PUBLIC}
    return {"@odata.context": context_url(call.request, "subscriptions/$entity"), **body} if entity else body


def _group_of(store: TenantStore, resource: object) -> str:
    if not isinstance(resource, str) or not resource.strip():
        raise _invalid("resource is required, e.g. 'groups/{id}'.")
    kind, _, group_id = resource.strip().strip("/").partition("/")
    if kind.lower() != "groups" or not group_id or "/" in group_id:
        raise _invalid(f"Resource '{resource}' is not supported here; subscribe to 'groups/{{id}}'.")
    if group_id not in store.groups:
        raise GraphError(
            404, "ResourceNotFound", f"Resource '{resource}' does not exist or could not be found."
        )
    return group_id


def _check_url(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} is required.")
    parts = urlsplit(value)
    host = parts.hostname or ""
    loopback = host == "localhost" or _is_loopback(host)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise _invalid(f"Subscription {name} must be an https URL (http only on the loopback here): {value}")
    return value


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_expiry(emulator: Emulator, value: object) -> str:
    if not isinstance(value, str):
        raise _invalid("expirationDateTime is required.")
    try:
        moment = parse_iso(value)
    except ValueError:
        raise _invalid(f"expirationDateTime '{value}' is not a valid date and time.") from None
    now = emulator.clock.now()
    if moment <= now:
        raise _invalid("Subscription expiration can only be in the future.")
    if moment > now + timedelta(minutes=MAX_GROUP_MINUTES):
        raise _invalid(f"Subscription expiration can only be {MAX_GROUP_MINUTES} minutes in the future.")
    return iso_utc(moment)


def _check_change_type(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid("changeType is required.")
    kinds = [part.strip() for part in value.split(",")]
    unknown = [kind for kind in kinds if kind not in CHANGE_TYPES]
    if unknown or len(set(kinds)) != len(kinds):
        raise _invalid(f"changeType '{value}' is not valid; use created, updated and/or deleted.")
    return ",".join(kinds)


def validate_endpoint(emulator: Emulator, url: str) -> None:
    """Graph's validation call to ``url``.

    Raises:
        GraphError: 400 when the endpoint does not answer 200 with exactly the token in time.
    """
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    separator = "&" if "?" in url else "?"
    timeout = emulator.clock.scaled(VALIDATION_TIMEOUT_SECONDS)
    try:
        status, body = post(
            f"{url}{separator}validationToken={quote_plus(token)}",
            b"",
            content_type="text/plain; charset=utf-8",
            timeout=timeout,
        )
    except OSError as exc:
        raise _invalid(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK "
            f"to validation request within {VALIDATION_TIMEOUT_SECONDS:g} seconds ({type(exc).__name__})."
        ) from None
    if status != 200:
        raise _invalid(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK "
            f"to validation request (it answered {status})."
        )
    if body.decode("utf-8", "replace") != token:
        raise _invalid(
            "Subscription validation request failed. Response must exactly match validationToken "
            "query parameter."
        )


@routes.post("/subscriptions")
def create_subscription(call: Call) -> Response:
    raw = call.request.json_object()
    unknown = set(raw) - _WRITABLE - {"@odata.type"}
    if unknown:
        raise _invalid(f"Unknown subscription properties: {', '.join(sorted(unknown))}.")
    emulator: Emulator = call.emulator
    group_id = _group_of(call.store, raw.get("resource"))
    change_type = _check_change_type(raw.get("changeType"))
    url = _check_url("notificationUrl", raw.get("notificationUrl"))
    lifecycle = raw.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = _check_url("lifecycleNotificationUrl", lifecycle)
    state = raw.get("clientState")
    if state is not None and (not isinstance(state, str) or len(state) > MAX_CLIENT_STATE):
        raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
    expiry = _check_expiry(emulator, raw.get("expirationDateTime"))
    validate_endpoint(emulator, url)
    if lifecycle is not None and lifecycle != url:
        validate_endpoint(emulator, lifecycle)
    item: JsonObject = dict.fromkeys(_PUBLIC)
    item.update(
        {
            "id": str(uuid.uuid4()),
            "resource": str(raw["resource"]).strip(),
            "applicationId": APPLICATION_ID,
            "changeType": change_type,
            "clientState": state,
            "notificationUrl": url,
            "lifecycleNotificationUrl": lifecycle,
            "expirationDateTime": expiry,
            "creatorId": APPLICATION_ID,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "groupId": group_id,
            "paused": False,
        }
    )
    _subscriptions(emulator).items[item["id"]] = item
    return Response.json(_view(call, item), status=201)


@routes.get("/subscriptions")
def list_subscriptions(call: Call) -> Response:
    items = list(_subscriptions(call.emulator).items.values())
    return Response.json(
        {
            "@odata.context": context_url(call.request, "subscriptions"),
            "value": [_view(call, item, entity=False) for item in items],
        }
    )


def _require(call: Call) -> JsonObject:
    sub_id = call.params["subscription_id"]
    item = _subscriptions(call.emulator).items.get(sub_id)
    if item is None:
        raise _not_found(sub_id)
    return item


@routes.get("/subscriptions/{subscription_id}")
def get_subscription(call: Call) -> Response:
    return Response.json(_view(call, _require(call)))


@routes.patch("/subscriptions/{subscription_id}")
def update_subscription(call: Call) -> Response:
    item = _require(call)
    raw = call.request.json_object()
    unknown = set(raw) - {"expirationDateTime", "notificationUrl", "@odata.type"}
    if unknown:
        raise _invalid(f"Only expirationDateTime and notificationUrl can be updated, not {sorted(unknown)}.")
    if "expirationDateTime" in raw:
        item["expirationDateTime"] = _check_expiry(call.emulator, raw["expirationDateTime"])
    if "notificationUrl" in raw and raw["notificationUrl"] != item["notificationUrl"]:
        url = _check_url("notificationUrl", raw["notificationUrl"])
        validate_endpoint(call.emulator, url)
        item["notificationUrl"] = url
    return Response.json(_view(call, item))


@routes.delete("/subscriptions/{subscription_id}")
def delete_subscription(call: Call) -> Response:
    item = _require(call)
    del _subscriptions(call.emulator).items[item["id"]]
    return Response.no_content()


@routes.post("/subscriptions/{subscription_id}/reauthorize")
def reauthorize_subscription(call: Call) -> Response:
    item = _require(call)
    item["paused"] = False
    return Response.no_content()


# change notifications -------------------------------------------------------------------------------


def notify_changes(emulator: Emulator, changes: list[tuple[int, str, str, str]]) -> None:
    """Queue the change notifications for ``changes`` (called after every Graph request)."""
    if not changes or "subscriptions" not in emulator.store.extensions:
        return
    by_group: dict[str, list[JsonObject]] = {}
    for item in _subscriptions(emulator).items.values():
        if not item.get("paused"):
            by_group.setdefault(item["groupId"], []).append(item)
    outgoing: dict[str, list[JsonObject]] = {}
    for sequence, group_id, kind, object_id in changes:
        for item in by_group.get(group_id, []):
            change_type = "deleted" if kind == "deleted" else "updated"
            if change_type not in item["changeType"].split(","):
                continue
            note = _notification(item, group_id, change_type, sequence, kind, object_id)
            outgoing.setdefault(item["notificationUrl"], []).append(note)
    for url, value in outgoing.items():
        emulator.outbound.send(url, {"value": value}, kind="change")


def _notification(
    item: JsonObject, group_id: str, change_type: str, sequence: int, kind: str, object_id: str
) -> JsonObject:
    resource_data: JsonObject = {
        "@odata.type": "#Microsoft.Graph.Group",
        "@odata.id": f"Groups/{group_id}",
        "id": group_id,
        "organizationId": TENANT_ID,
        "sequenceNumber": sequence,
    }
    if kind in ("add", "remove"):
        member: JsonObject = {"id": object_id}
        if kind == "remove":
            member["@removed"] = {"reason": "deleted"}
        resource_data["members@delta"] = [member]
    return {
        "subscriptionId": item["id"],
        "subscriptionExpirationDateTime": item["expirationDateTime"],
        "clientState": item["clientState"],
        "changeType": change_type,
        "resource": f"Groups/{group_id}",
        "tenantId": TENANT_ID,
        "resourceData": resource_data,
    }


# lifecycle notifications (admin) ------------------------------------------------------------------------


@admin_routes.post("/subscriptions/{subscription_id}/lifecycle")
def send_lifecycle(call: Call) -> Response:
    item = _require(call)
    raw = call.request.json_object()
    event = raw.get("event")
    if event not in LIFECYCLE_EVENTS:
        raise bad_request(f"event must be one of {', '.join(sorted(LIFECYCLE_EVENTS))}", code="BadRequest")
    url = item.get("lifecycleNotificationUrl")
    if not url:
        raise bad_request("this subscription has no lifecycleNotificationUrl", code="BadRequest")
    notification: JsonObject = {
        "subscriptionId": item["id"],
        "subscriptionExpirationDateTime": item["expirationDateTime"],
        "tenantId": TENANT_ID,
        "clientState": item["clientState"],
        "lifecycleEvent": event,
    }
    if event == "missed":
        notification["resource"] = item["resource"]
    if event == "subscriptionRemoved":
        del _subscriptions(call.emulator).items[item["id"]]
    elif event == "reauthorizationRequired":
        item["paused"] = True
    delivery = call.emulator.outbound.send(url, {"value": [notification]}, kind="lifecycle")
    return Response.json({"sequence": delivery.sequence, "value": [notification]}, status=202)


@admin_routes.get("/subscriptions")
def admin_list(call: Call) -> Response:
    items = list(_subscriptions(call.emulator).items.values())
    value = [{**_view(call, i, entity=False), "paused": i["paused"], "groupId": i["groupId"]} for i in items]
    return Response.json({"value": value})


@admin_routes.get("/notifications")
def list_notifications(call: Call) -> Response:
    value = call.emulator.outbound.deliveries()
    return Response.json({"count": len(value), "pending": call.emulator.outbound.pending(), "value": value})


@admin_routes.delete("/notifications")
def clear_notifications(call: Call) -> Response:
    call.emulator.outbound.clear()
    return Response.no_content()
