"""Identity Protection as on Graph v1.0, its request budget, revokeSignInSessions and the admin API.

- ``GET /identityProtection/riskDetections`` (+ ``/{id}``): Graph's ``riskDetection`` shape,
  ``$filter`` (ranges on the timestamps without ``ConsistencyLevel``, as the report APIs take
  them), ``$select``, ``$orderby``, ``$top`` (20 by default, at most 500, as documented) and
  ``@odata.nextLink``; newest detection first unless ordered otherwise.
- ``GET /identityProtection/riskyUsers`` (+ ``/{id}``, the user's id), ``POST
  /identityProtection/riskyUsers/confirmCompromised`` and ``/dismiss`` with ``{"userIds": [...]}``.
- ``POST /users/{id or UPN}/revokeSignInSessions``: 200 ``{"value": true}``; each call is recorded.
- The budget: Graph allows any Identity Protection request about once per second per tenant and
  answers 429 ``TooManyRequests`` **without** ``Retry-After``. A token bucket (``capacity`` 2,
  refilled at ``refillPerSecond`` 1, multiplied by the emulator's time scale) guards every
  ``/identityProtection/*`` request, reads and writes alike.

Tests and the demo inject detections through ``POST /_emulator/risk-detections`` with only what
matters to them (who, how risky, which event); the rest is filled in with Graph's shape.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from local.graph_emulator.clock import EmulatorClock, iso_utc, parse_iso
from local.graph_emulator.errors import GraphError, JsonObject, bad_request, not_found
from local.graph_emulator.odata import (
    ResourceShape,
    check_options,
    context_url,
    decode_skiptoken,
    next_link,
    parse_select,
    parse_top,
    project,
)
from local.graph_emulator.odata_filter import BASIC, FilterRules, parse_filter
from local.graph_emulator.routing import Call, Request, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

if TYPE_CHECKING:
    from local.graph_emulator.app import Emulator

routes = RouteTable()
admin_routes = RouteTable()

EXTENSION = "identityProtection"
REVOCATIONS_EXTENSION = "sessionRevocations"
RESET_FIELD = "identityProtectionBudget"

# --- the request budget -------------------------------------------------------------------------

# Graph: "Identity protection and conditional access service limits: any request, 1 request per
# second per tenant for all apps", 429 without Retry-After. The burst of 2 is the emulator's: it
# lets a client read detections and then risky users back to back; set capacity 1 to be strict.
DEFAULT_BUDGET_CAPACITY = 2
DEFAULT_REFILL_PER_SECOND = 1.0
BUDGET_FIELDS = frozenset({"enabled", "capacity", "refillPerSecond"})


@dataclass(frozen=True)
class IdentityProtectionBudget:
    """The ``identityProtectionBudget`` reset field: on/off, bucket size and refill rate."""

    enabled: bool = True
    capacity: int = DEFAULT_BUDGET_CAPACITY
    refill_per_second: float = DEFAULT_REFILL_PER_SECOND

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"{RESET_FIELD}.enabled must be true or false, got {self.enabled!r}")
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) or self.capacity < 1:
            raise ValueError(
                f"{RESET_FIELD}.capacity must be a whole number of at least 1, got {self.capacity!r}"
            )
        rate = self.refill_per_second
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise ValueError(f"{RESET_FIELD}.refillPerSecond must be a number above 0, got {rate!r}")

    @classmethod
    def from_json(cls, raw: object) -> IdentityProtectionBudget:
        """Parse ``true``/``false`` or ``{"enabled", "capacity", "refillPerSecond"}`` (all optional).

        Raises:
            ValueError: an unknown field or an invalid value (the message names it).
        """
        if isinstance(raw, bool):
            return cls(enabled=raw)
        if not isinstance(raw, dict):
            raise ValueError(f"{RESET_FIELD} must be true, false or an object")
        unknown = set(raw) - BUDGET_FIELDS
        if unknown:
            raise ValueError(f"{RESET_FIELD} has unknown fields: {', '.join(sorted(unknown))}")
        return cls(
            enabled=raw.get("enabled", True),
            capacity=raw.get("capacity", DEFAULT_BUDGET_CAPACITY),
            refill_per_second=raw.get("refillPerSecond", DEFAULT_REFILL_PER_SECOND),
        )

    def to_json(self) -> JsonObject:
        return {"enabled": self.enabled, "capacity": self.capacity, "refillPerSecond": self.refill_per_second}


class IdentityProtectionBucket:
    """A thread-safe token bucket on the emulator clock: ``time_scale`` 10 refills ten times faster."""

    def __init__(self, budget: IdentityProtectionBudget, clock: EmulatorClock) -> None:
        self.budget = budget
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens = float(budget.capacity)
        self._updated = clock.monotonic()

    @property
    def rate(self) -> float:
        """Tokens added per real second."""
        return self.budget.refill_per_second * self.clock.time_scale

    def available(self) -> float:
        """Tokens in the bucket now."""
        with self._lock:
            self._refill()
            return self._tokens

    def take(self) -> None:
        """Spend one token for an Identity Protection request.

        Raises:
            GraphError: 429 TooManyRequests, with no Retry-After header, when the bucket is empty.
        """
        if not self.budget.enabled:
            return
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
        raise GraphError(
            429,
            "TooManyRequests",
            "Too many requests: Identity Protection allows about 1 request per second per tenant. "
            "Back off and try again.",
        )

    def fill(self) -> None:
        """Put every token back (the admin reset)."""
        with self._lock:
            self._tokens = float(self.budget.capacity)
            self._updated = self.clock.monotonic()

    def state(self) -> JsonObject:
        return {**self.budget.to_json(), "available": round(self.available(), 3)}

    def _refill(self) -> None:
        now = self.clock.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.budget.capacity), self._tokens + elapsed * self.rate)
        self._updated = now


def spend(call: Call) -> None:
    """Count this request against the tenant's Identity Protection budget (429 when spent)."""
    call.emulator.identity_protection_bucket.take()


def configure_budget(emulator: Emulator, budget: IdentityProtectionBudget) -> None:
    """Replace the live budget (a full bucket) without resetting the tenant."""
    emulator.config = replace(emulator.config, identity_protection_budget=budget)
    emulator.identity_protection_bucket = IdentityProtectionBucket(budget, emulator.clock)


# --- Graph's vocabulary -------------------------------------------------------------------------

RISK_LEVEL_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
INJECTABLE_LEVELS = ("low", "medium", "high")
RISK_STATES = frozenset(
    {"none", "confirmedSafe", "remediated", "dismissed", "atRisk", "confirmedCompromised"}
)
RISK_DETAILS = frozenset(
    {
        "none",
        "adminGeneratedTemporaryPassword",
        "userPerformedSecuredPasswordChange",
        "userPerformedSecuredPasswordReset",
        "adminConfirmedSigninSafe",
        "aiConfirmedSigninSafe",
        "userPassedMFADrivenByRiskBasedPolicy",
        "adminDismissedAllRiskForUser",
        "adminConfirmedSigninCompromised",
        "hidden",
        "adminConfirmedUserCompromised",
    }
)
# riskDetail a detection gets when it is injected in a state other than atRisk without one.
DETAIL_FOR_STATE = {
    "none": "none",
    "atRisk": "none",
    "confirmedSafe": "adminConfirmedSigninSafe",
    "remediated": "userPerformedSecuredPasswordReset",
    "dismissed": "adminDismissedAllRiskForUser",
    "confirmedCompromised": "adminConfirmedUserCompromised",
}
RISK_EVENT_TYPES = frozenset(
    {
        "adminConfirmedUserCompromised",
        "anomalousToken",
        "anomalousUserActivity",
        "anonymizedIPAddress",
        "generic",
        "impossibleTravel",
        "investigationsThreatIntelligence",
        "leakedCredentials",
        "maliciousIPAddress",
        "malwareInfectedIPAddress",
        "mcasSuspiciousInboxManipulationRules",
        "newCountry",
        "passwordSpray",
        "riskyIPAddress",
        "suspiciousAPITraffic",
        "suspiciousBrowser",
        "suspiciousInboxForwarding",
        "suspiciousIPAddress",
        "tokenIssuerAnomaly",
        "unfamiliarFeatures",
        "unlikelyTravel",
    }
)
# Detections about the account rather than one sign-in: no IP address, request or correlation id.
USER_ACTIVITY_EVENTS = frozenset(
    {
        "adminConfirmedUserCompromised",
        "anomalousUserActivity",
        "leakedCredentials",
        "mcasSuspiciousInboxManipulationRules",
        "suspiciousAPITraffic",
        "suspiciousInboxForwarding",
    }
)
REALTIME_EVENTS = frozenset({"anonymizedIPAddress", "unfamiliarFeatures"})
ACTIVITIES = frozenset({"signin", "user"})
TIMING_TYPES = frozenset({"notDefined", "realtime", "nearRealtime", "offline"})
TOKEN_ISSUERS = frozenset(
    {
        "AzureAD",
        "ADFederationServices",
        "AzureADBackupAuthentication",
        "ADFederationServicesMFAAdapter",
        "NPSExtension",
    }
)
DEFAULT_IP = "203.0.113.45"
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
# (city, state, latitude, longitude) of a plausible sign-in from each demo country.
CITIES = {
    "GB": ("London", "England", 51.5072, -0.1276),
    "US": ("Seattle", "Washington", 47.6062, -122.3321),
    "DE": ("Berlin", "Berlin", 52.52, 13.405),
    "FR": ("Paris", "Ile-de-France", 48.8566, 2.3522),
    "NL": ("Amsterdam", "Noord-Holland", 52.3676, 4.9041),
    "IN": ("Bengaluru", "Karnataka", 12.9716, 77.5946),
}
LOCATION_FIELDS = frozenset({"city", "state", "countryOrRegion", "geoCoordinates"})
GEO_FIELDS = frozenset({"altitude", "latitude", "longitude"})
INPUT_FIELDS = frozenset(
    {
        "id",
        "userId",
        "userPrincipalName",
        "riskLevel",
        "riskEventType",
        "riskState",
        "riskDetail",
        "detectedDateTime",
        "activityDateTime",
        "lastUpdatedDateTime",
        "ipAddress",
        "location",
        "activity",
        "detectionTimingType",
        "source",
        "tokenIssuerType",
        "requestId",
        "correlationId",
        "additionalInfo",
    }
)

# --- shapes, filters and ordering ---------------------------------------------------------------

DETECTION_PROPERTIES = (
    "id",
    "requestId",
    "correlationId",
    "riskEventType",
    "riskState",
    "riskLevel",
    "riskDetail",
    "source",
    "detectionTimingType",
    "activity",
    "tokenIssuerType",
    "ipAddress",
    "location",
    "activityDateTime",
    "detectedDateTime",
    "lastUpdatedDateTime",
    "userId",
    "userDisplayName",
    "userPrincipalName",
    "additionalInfo",
)
RISKY_USER_PROPERTIES = (
    "id",
    "isDeleted",
    "isProcessing",
    "riskLastUpdatedDateTime",
    "riskLevel",
    "riskState",
    "riskDetail",
    "userDisplayName",
    "userPrincipalName",
)
EQ_IN = frozenset({"eq", "in"})
RANGE = frozenset({"eq", "ge", "gt", "le", "lt"})
DETECTION = ResourceShape(
    type_name="riskDetection",
    properties=frozenset(DETECTION_PROPERTIES),
    default_properties=DETECTION_PROPERTIES,
    filter_rules=FilterRules(
        resource="RiskDetection",
        properties={
            "id": EQ_IN,
            "userId": EQ_IN,
            "userPrincipalName": BASIC,
            "userDisplayName": BASIC,
            "riskLevel": EQ_IN,
            "riskState": EQ_IN,
            "riskDetail": EQ_IN,
            "riskEventType": EQ_IN,
            "activity": EQ_IN,
            "detectionTimingType": EQ_IN,
            "source": EQ_IN,
            "tokenIssuerType": EQ_IN,
            "ipAddress": BASIC,
            "requestId": EQ_IN,
            "correlationId": EQ_IN,
            "detectedDateTime": RANGE,
            "activityDateTime": RANGE,
            "lastUpdatedDateTime": RANGE,
            "location/countryOrRegion": EQ_IN,
            "location/city": EQ_IN,
        },
    ),
)
RISKY_USER = ResourceShape(
    type_name="riskyUser",
    properties=frozenset(RISKY_USER_PROPERTIES),
    default_properties=RISKY_USER_PROPERTIES,
    filter_rules=FilterRules(
        resource="RiskyUser",
        properties={
            "id": EQ_IN,
            "userPrincipalName": BASIC,
            "userDisplayName": BASIC,
            "riskLevel": EQ_IN,
            "riskState": EQ_IN,
            "riskDetail": EQ_IN,
            "isDeleted": frozenset({"eq"}),
            "isProcessing": frozenset({"eq"}),
            "riskLastUpdatedDateTime": RANGE,
        },
    ),
)
DETECTION_ORDER = frozenset({"detectedDateTime", "activityDateTime", "lastUpdatedDateTime"})
RISKY_USER_ORDER = frozenset({"riskLastUpdatedDateTime"})
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 500
LIST_OPTIONS = frozenset({"$filter", "$select", "$top", "$skiptoken", "$orderby"})

# --- state --------------------------------------------------------------------------------------


@dataclass
class IdentityProtectionState:
    """The tenant's risk detections (in the order they happened to the emulator) and risky users."""

    detections: list[JsonObject] = field(default_factory=list)
    risky_users: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        """How many risk detections the admin state reports."""
        return len(self.detections)

    def to_json(self) -> JsonObject:
        return {"detections": self.detections, "riskyUsers": list(self.risky_users.values())}

    @classmethod
    def from_json(cls, data: JsonObject) -> IdentityProtectionState:
        return cls(
            detections=list(data.get("detections", [])),
            risky_users={u["id"]: u for u in data.get("riskyUsers", [])},
        )


@dataclass
class SessionRevocations:
    """Every ``revokeSignInSessions`` call, oldest first."""

    items: list[JsonObject] = field(default_factory=list)

    def count(self) -> int:
        return len(self.items)

    def to_json(self) -> JsonObject:
        return {"items": self.items}

    @classmethod
    def from_json(cls, data: JsonObject) -> SessionRevocations:
        return cls(items=list(data.get("items", [])))


register_extension(EXTENSION, IdentityProtectionState.from_json)
register_extension(REVOCATIONS_EXTENSION, SessionRevocations.from_json)


def read_state(store: TenantStore) -> IdentityProtectionState:
    """The tenant's Identity Protection state; an empty one (not stored) when nothing happened yet."""
    state = store.extensions.get(EXTENSION)
    return state if isinstance(state, IdentityProtectionState) else IdentityProtectionState()


def write_state(store: TenantStore) -> IdentityProtectionState:
    """The state to change (created on first use, so snapshots and featureCounts include it)."""
    return store.extension(EXTENSION, IdentityProtectionState)


def revocations(store: TenantStore) -> list[JsonObject]:
    """Every revocation recorded so far, oldest first (a copy)."""
    state = store.extensions.get(REVOCATIONS_EXTENSION)
    return list(state.items) if isinstance(state, SessionRevocations) else []


# --- Graph routes -------------------------------------------------------------------------------


@routes.get("/identityProtection/riskDetections")
def list_risk_detections(call: Call) -> Response:
    spend(call)
    return list_page(
        call.request,
        read_state(call.store).detections,
        DETECTION,
        context="identityProtection/riskDetections",
        sortable=DETECTION_ORDER,
        default_order=("detectedDateTime", True),
        filter_view=detection_filter_view,
    )


@routes.get("/identityProtection/riskDetections/{detection_id}")
def get_risk_detection(call: Call) -> Response:
    spend(call)
    wanted = call.params["detection_id"]
    found = next((d for d in read_state(call.store).detections if d["id"] == wanted), None)
    if found is None:
        raise not_found(wanted)
    return entity(call.request, found, DETECTION, "identityProtection/riskDetections")


@routes.get("/identityProtection/riskyUsers")
def list_risky_users(call: Call) -> Response:
    spend(call)
    return list_page(
        call.request,
        read_state(call.store).risky_users.values(),
        RISKY_USER,
        context="identityProtection/riskyUsers",
        sortable=RISKY_USER_ORDER,
        default_order=("riskLastUpdatedDateTime", True),
    )


@routes.get("/identityProtection/riskyUsers/{user_id}")
def get_risky_user(call: Call) -> Response:
    spend(call)
    wanted = call.params["user_id"]
    risky_users = read_state(call.store).risky_users
    found = risky_users.get(wanted) or risky_users.get(wanted.lower())
    if found is None:
        raise not_found(wanted)
    return entity(call.request, found, RISKY_USER, "identityProtection/riskyUsers")


@routes.post("/identityProtection/riskyUsers/confirmCompromised")
def confirm_compromised(call: Call) -> Response:
    """Each user becomes confirmedCompromised at high risk, with Graph's admin detection."""
    spend(call)
    users = users_of(call, "confirmCompromised")
    now = iso_utc(call.emulator.clock.now())
    state = write_state(call.store)
    for user in users:
        mark_compromised(state, user, now)
    return Response.no_content()


@routes.post("/identityProtection/riskyUsers/dismiss")
def dismiss(call: Call) -> Response:
    """Each risky user's risk is dismissed (level none), and so are their atRisk detections."""
    spend(call)
    users = users_of(call, "dismiss")
    now = iso_utc(call.emulator.clock.now())
    state = read_state(call.store)  # only users with a risk record change, so nothing new is stored
    for user in users:
        dismiss_user(state, user, now)
    return Response.no_content()


@routes.post("/users/{user_id}/revokeSignInSessions")
def revoke_sign_in_sessions(call: Call) -> Response:
    """Graph's 200 ``Edm.Boolean`` answer; the emulator records who and when."""
    user = call.store.require_user(call.params["user_id"])
    record = {
        "userId": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "revokedDateTime": iso_utc(call.emulator.clock.now()),
        "requestId": call.request.request_id,
    }
    call.store.extension(REVOCATIONS_EXTENSION, SessionRevocations).items.append(record)
    return Response.json({"@odata.context": context_url(call.request, "Edm.Boolean"), "value": True})


# --- listing ------------------------------------------------------------------------------------


def detection_filter_view(item: JsonObject) -> JsonObject:
    location = item.get("location") or {}
    return {
        **item,
        "location/countryOrRegion": location.get("countryOrRegion"),
        "location/city": location.get("city"),
    }


def page_size(request: Request) -> int:
    """``$top``: 20 by default, 1..500, as documented for riskDetections."""
    return parse_top(request, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE, code="BadRequest")


def parse_orderby(
    request: Request, sortable: frozenset[str], default: tuple[str, bool]
) -> list[tuple[str, bool]]:
    """``$orderby`` as (property, descending) keys, most significant first.

    Raises:
        GraphError: 400 naming a property that cannot be ordered by or a direction other than asc/desc.
    """
    raw = request.query_value("$orderby")
    if raw is None or not raw.strip():
        return [default]
    keys: list[tuple[str, bool]] = []
    lookup = {name.casefold(): name for name in sortable}
    for clause in raw.split(","):
        words = clause.split()
        name = lookup.get(words[0].casefold()) if words else None
        if name is None or len(words) > 2:
            raise bad_request(
                f"Invalid $orderby clause '{clause.strip()}': order by one of {', '.join(sorted(sortable))}, "
                "optionally followed by asc or desc.",
                code="BadRequest",
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise bad_request(f"Invalid $orderby direction '{words[1]}': use asc or desc.", code="BadRequest")
        keys.append((name, direction == "desc"))
    return keys


def ordered(items: Iterable[JsonObject], keys: list[tuple[str, bool]]) -> list[JsonObject]:
    """Sorted by timestamp keys (missing ones last), then by id for a stable page order."""
    result = sorted(items, key=lambda item: str(item.get("id")))
    for name, descending in reversed(keys):
        present = [item for item in result if _instant(item.get(name)) is not None]
        missing = [item for item in result if _instant(item.get(name)) is None]
        present.sort(key=lambda item: _instant(item.get(name)) or datetime.min, reverse=descending)
        result = present + missing
    return result


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def list_page(
    request: Request,
    items: Iterable[JsonObject],
    shape: ResourceShape,
    *,
    context: str,
    sortable: frozenset[str],
    default_order: tuple[str, bool],
    filter_view: Callable[[JsonObject], JsonObject] | None = None,
) -> Response:
    """One page: ``$filter`` (ranges without the header), ``$orderby``, ``$select``, ``$top``, nextLink.

    Raises:
        GraphError: an unsupported option, filter, order, page size or skiptoken (400).
    """
    check_options(request, allowed=LIST_OPTIONS)
    select = parse_select(request, shape)
    top = page_size(request)
    keys = parse_orderby(request, sortable, default_order)
    matching = list(items)
    raw_filter = request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, shape.filter_rules, advanced=True)
        view = filter_view or (lambda item: item)
        matching = [item for item in matching if predicate(view(item))]
    matching = ordered(matching, keys)
    skiptoken = request.query_value("$skiptoken")
    offset = decode_skiptoken(skiptoken) if skiptoken is not None else 0
    fragment = f"{context}({','.join(select)})" if select else context
    body: JsonObject = {"@odata.context": context_url(request, fragment)}
    if offset + top < len(matching):
        body["@odata.nextLink"] = next_link(request, offset + top)
    type_tag = {} if select else {"@odata.type": shape.odata_type}
    body["value"] = [{**type_tag, **project(item, shape, select)} for item in matching[offset : offset + top]]
    return Response.json(body)


def entity(request: Request, item: JsonObject, shape: ResourceShape, context: str) -> Response:
    check_options(request, allowed={"$select"})
    select = parse_select(request, shape)
    fragment = f"{context}({','.join(select)})" if select else context
    type_tag = {} if select else {"@odata.type": shape.odata_type}
    return Response.json(
        {
            "@odata.context": context_url(request, f"{fragment}/$entity"),
            **type_tag,
            **project(item, shape, select),
        }
    )


# --- actions ------------------------------------------------------------------------------------


def users_of(call: Call, action: str) -> list[JsonObject]:
    """The directory users named by an action body ``{"userIds": [...]}``, all or nothing.

    Raises:
        GraphError: 400 for a body without a non-empty list of id strings; 404 for an unknown id.
    """
    body = call.request.json()
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object with 'userIds'.", code="BadRequest")
    for name in body:
        if name != "userIds":
            raise bad_request(
                f"The parameter '{name}' in the request payload is not a valid parameter for the "
                f"operation '{action}'.",
                code="BadRequest",
            )
    ids = body.get("userIds")
    if not isinstance(ids, list) or not ids:
        raise bad_request(
            f"The parameter 'userIds' of the operation '{action}' must be a non-empty list of user ids.",
            code="BadRequest",
        )
    users: dict[str, JsonObject] = {}
    for index, raw in enumerate(ids):
        if not isinstance(raw, str) or not raw.strip():
            raise bad_request(f"userIds[{index}] must be a user id (a non-empty string).", code="BadRequest")
        user = call.store.users.get(raw) or call.store.users.get(raw.strip().lower())
        if user is None:
            raise not_found(raw)
        users[user["id"]] = user
    return list(users.values())


def risky_user_record(user: JsonObject) -> JsonObject:
    return {
        "id": user["id"],
        "isDeleted": False,
        "isProcessing": False,
        "riskLastUpdatedDateTime": None,
        "riskLevel": "none",
        "riskState": "none",
        "riskDetail": "none",
        "userDisplayName": user.get("displayName"),
        "userPrincipalName": user["userPrincipalName"],
    }


def mark_compromised(state: IdentityProtectionState, user: JsonObject, now: str) -> JsonObject:
    """confirmCompromised for one user: the riskyUser and the adminConfirmedUserCompromised detection."""
    risky = state.risky_users.setdefault(user["id"], risky_user_record(user))
    risky.update(
        {
            "riskState": "confirmedCompromised",
            "riskLevel": "high",
            "riskDetail": "adminConfirmedUserCompromised",
            "riskLastUpdatedDateTime": now,
        }
    )
    detection = detection_record(
        user,
        now,
        riskEventType="adminConfirmedUserCompromised",
        riskLevel="high",
        riskState="confirmedCompromised",
        riskDetail="adminConfirmedUserCompromised",
    )
    state.detections.append(detection)
    return risky


def dismiss_user(state: IdentityProtectionState, user: JsonObject, now: str) -> None:
    """dismiss for one user: a user with no risk record is left alone, as there is nothing to dismiss."""
    risky = state.risky_users.get(user["id"])
    if risky is None:
        return
    risky.update(
        {
            "riskState": "dismissed",
            "riskLevel": "none",
            "riskDetail": "adminDismissedAllRiskForUser",
            "riskLastUpdatedDateTime": now,
        }
    )
    for detection in state.detections:
        if detection["userId"] == user["id"] and detection["riskState"] == "atRisk":
            detection.update(
                {
                    "riskState": "dismissed",
                    "riskDetail": "adminDismissedAllRiskForUser",
                    "lastUpdatedDateTime": now,
                }
            )


# --- building detections ------------------------------------------------------------------------


def default_location(user: JsonObject) -> JsonObject:
    country = str(user.get("usageLocation") or "GB")
    city, region, latitude, longitude = CITIES.get(country, CITIES["GB"])
    return {
        "city": city,
        "state": region,
        "countryOrRegion": country,
        "geoCoordinates": {"altitude": None, "latitude": latitude, "longitude": longitude},
    }


def detection_record(user: JsonObject, detected: str, **given: Any) -> JsonObject:
    """A complete riskDetection for ``user`` detected at ``detected``; ``given`` overrides the defaults.

    ``given`` uses Graph's property names and must already be valid (``build_detection`` checks).
    """
    event = given.get("riskEventType", "unfamiliarFeatures")
    activity = given.get("activity") or ("user" if event in USER_ACTIVITY_EVENTS else "signin")
    on_sign_in = activity == "signin"
    state = given.get("riskState", "atRisk")
    record: JsonObject = {
        "id": given.get("id") or str(uuid.uuid4()),
        "requestId": str(uuid.uuid4()) if on_sign_in else None,
        "correlationId": str(uuid.uuid4()) if on_sign_in else None,
        "riskEventType": event,
        "riskState": state,
        "riskLevel": given.get("riskLevel", "medium"),
        "riskDetail": DETAIL_FOR_STATE[state],
        "source": "activeDirectory",
        "detectionTimingType": "realtime" if event in REALTIME_EVENTS and on_sign_in else "offline",
        "activity": activity,
        "tokenIssuerType": "AzureAD",
        "ipAddress": DEFAULT_IP if on_sign_in else None,
        "location": default_location(user)
        if on_sign_in
        else {"city": None, "state": None, "countryOrRegion": None, "geoCoordinates": None},
        "activityDateTime": detected,
        "detectedDateTime": detected,
        "lastUpdatedDateTime": detected,
        "userId": user["id"],
        "userDisplayName": user.get("displayName"),
        "userPrincipalName": user["userPrincipalName"],
        "additionalInfo": json.dumps([{"Key": "userAgent", "Value": DEFAULT_USER_AGENT}])
        if on_sign_in
        else "[]",
    }
    record.update({k: v for k, v in given.items() if k not in ("activity", "id") and v is not None})
    if isinstance(given.get("location"), dict):
        record["location"] = completed_location(given["location"])
    return record


def completed_location(given: JsonObject) -> JsonObject:
    """A given location with every signInLocation key: a known country alone brings its demo city."""
    country = given.get("countryOrRegion")
    if isinstance(country, str) and country in CITIES and given.get("city") is None:
        return {
            **default_location({"usageLocation": country}),
            **{k: v for k, v in given.items() if v is not None},
        }
    return {"city": None, "state": None, "countryOrRegion": None, "geoCoordinates": None, **given}


def _invalid(where: str, message: str) -> GraphError:
    return bad_request(f"{where}.{message}", code="BadRequest")


def _timestamp(raw: JsonObject, name: str, where: str, default: str) -> str:
    value = raw.get(name, default)
    try:
        if isinstance(value, str):
            return iso_utc(parse_iso(value))
    except ValueError:
        pass
    raise _invalid(where, f"{name}: must be an ISO 8601 date and time, got {value!r}")


def _one_of(
    raw: JsonObject, name: str, allowed: Iterable[str], where: str, *, required: bool = False
) -> None:
    if name not in raw and not required:
        return
    options = sorted(allowed)
    if raw.get(name) not in options:
        raise _invalid(where, f"{name}: must be one of {', '.join(options)}, got {raw.get(name)!r}")


def _location(value: Any, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise _invalid(where, "location: must be an object with city, state, countryOrRegion, geoCoordinates")
    unknown = set(value) - LOCATION_FIELDS
    if unknown:
        raise _invalid(where, f"location has unknown fields: {', '.join(sorted(unknown))}")
    for name in ("city", "state", "countryOrRegion"):
        if value.get(name) is not None and not isinstance(value[name], str):
            raise _invalid(where, f"location.{name}: must be a string")
    geo = value.get("geoCoordinates")
    if geo is not None:
        if not isinstance(geo, dict) or set(geo) - GEO_FIELDS:
            raise _invalid(
                where, "location.geoCoordinates: must be an object with altitude, latitude, longitude"
            )
        for name, number in geo.items():
            if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
                raise _invalid(where, f"location.geoCoordinates.{name}: must be a number")
        value = {**value, "geoCoordinates": {"altitude": None, "latitude": None, "longitude": None, **geo}}
    return dict(value)


def build_detection(store: TenantStore, raw: Any, where: str, now: str) -> JsonObject:
    """A full riskDetection from an admin injection.

    Raises:
        GraphError: 400 naming the field that is unknown, missing or invalid.
    """
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", code="BadRequest")
    unknown = set(raw) - INPUT_FIELDS
    if unknown:
        raise bad_request(f"{where} has unknown fields: {', '.join(sorted(unknown))}", code="BadRequest")
    key = raw.get("userId") or raw.get("userPrincipalName")
    if not isinstance(key, str) or not key:
        raise _invalid(where, "userId: userId or userPrincipalName is required")
    user = store.find_user(key)
    if user is None:
        raise _invalid(where, f"userId: no user has the id or userPrincipalName {key!r}")
    _one_of(raw, "riskLevel", INJECTABLE_LEVELS, where, required=True)
    _one_of(raw, "riskEventType", RISK_EVENT_TYPES, where, required=True)
    _one_of(raw, "riskState", RISK_STATES, where)
    _one_of(raw, "riskDetail", RISK_DETAILS, where)
    _one_of(raw, "activity", ACTIVITIES, where)
    _one_of(raw, "detectionTimingType", TIMING_TYPES, where)
    _one_of(raw, "tokenIssuerType", TOKEN_ISSUERS, where)
    for name in ("id", "ipAddress", "source", "requestId", "correlationId"):
        if raw.get(name) is not None and (not isinstance(raw[name], str) or not raw[name]):
            raise _invalid(where, f"{name}: must be a non-empty string")
    detected = _timestamp(raw, "detectedDateTime", where, now)
    given: JsonObject = {
        name: raw[name]
        for name in (
            "id",
            "riskLevel",
            "riskEventType",
            "riskState",
            "riskDetail",
            "activity",
            "detectionTimingType",
            "tokenIssuerType",
            "ipAddress",
            "source",
            "requestId",
            "correlationId",
        )
        if name in raw
    }
    given["activityDateTime"] = _timestamp(raw, "activityDateTime", where, detected)
    given["lastUpdatedDateTime"] = _timestamp(raw, "lastUpdatedDateTime", where, detected)
    if "location" in raw:
        given["location"] = _location(raw["location"], where)
    if "additionalInfo" in raw:
        info = raw["additionalInfo"]
        if not isinstance(info, str | list | dict):
            raise _invalid(where, "additionalInfo: must be a JSON string, a list or an object")
        given["additionalInfo"] = info if isinstance(info, str) else json.dumps(info)
    if "riskState" in raw and "riskDetail" not in raw:
        given["riskDetail"] = DETAIL_FOR_STATE[raw["riskState"]]
    return detection_record(user, detected, **given)


def add_detections(store: TenantStore, detections: list[JsonObject], now: str) -> None:
    """Store built detections and bring each user's riskyUser up to date.

    An atRisk detection makes its user atRisk at the highest level among their atRisk detections
    (a confirmedCompromised user stays so); a detection in another state only creates a missing
    riskyUser, in that state at level none.
    """
    state = write_state(store)
    ids = {d["id"] for d in state.detections}
    for detection in detections:
        if detection["id"] in ids:
            raise bad_request(
                f"A risk detection with the id '{detection['id']}' already exists.", code="BadRequest"
            )
        ids.add(detection["id"])
    for detection in detections:
        state.detections.append(detection)
        user = store.users[detection["userId"]]
        risky = state.risky_users.get(user["id"])
        if detection["riskState"] != "atRisk":
            if risky is None:
                state.risky_users[user["id"]] = {
                    **risky_user_record(user),
                    "riskState": detection["riskState"],
                    "riskDetail": detection["riskDetail"],
                    "riskLastUpdatedDateTime": now,
                }
            continue
        risky = state.risky_users.setdefault(user["id"], risky_user_record(user))
        risky["riskLastUpdatedDateTime"] = now
        if risky["riskState"] == "confirmedCompromised":
            continue
        current = [
            d["riskLevel"]
            for d in state.detections
            if d["userId"] == user["id"] and d["riskState"] == "atRisk"
        ]
        risky.update(
            {
                "riskState": "atRisk",
                "riskDetail": "none",
                "riskLevel": max(current, key=lambda level: RISK_LEVEL_RANK.get(level, 0)),
            }
        )


# --- admin API ----------------------------------------------------------------------------------


@admin_routes.post("/risk-detections")
def inject_risk_detections(call: Call) -> Response:
    """Inject one detection (object) or several (list), all or nothing; answers them as Graph lists them."""
    raw = call.request.json()
    items = raw if isinstance(raw, list) else [raw]
    now = iso_utc(call.emulator.clock.now())
    built = [build_detection(call.store, item, f"riskDetections[{i}]", now) for i, item in enumerate(items)]
    add_detections(call.store, built, now)
    return Response.json({"value": built} if isinstance(raw, list) else built[0], status=201)


@admin_routes.get("/risk-detections")
def admin_list_detections(call: Call) -> Response:
    detections = read_state(call.store).detections
    return Response.json({"count": len(detections), "value": detections})


@admin_routes.delete("/risk-detections")
def admin_clear_detections(call: Call) -> Response:
    """Forget every detection and risky user."""
    state = call.store.extensions.get(EXTENSION)
    if isinstance(state, IdentityProtectionState):
        state.detections.clear()
        state.risky_users.clear()
    return Response.no_content()


@admin_routes.get("/risky-users")
def admin_list_risky_users(call: Call) -> Response:
    users = list(read_state(call.store).risky_users.values())
    return Response.json({"count": len(users), "value": users})


@admin_routes.get("/revocations")
def admin_list_revocations(call: Call) -> Response:
    """``?userId=`` (id or UPN) narrows to one user."""
    items = revocations(call.store)
    wanted = call.request.query_value("userId")
    if wanted:
        user = call.store.find_user(wanted)
        items = [r for r in items if user is not None and r["userId"] == user["id"]]
    return Response.json({"count": len(items), "value": items})


@admin_routes.delete("/revocations")
def admin_clear_revocations(call: Call) -> Response:
    state = call.store.extensions.get(REVOCATIONS_EXTENSION)
    if isinstance(state, SessionRevocations):
        state.items.clear()
    return Response.no_content()


def admin_state(emulator: Emulator) -> JsonObject:
    state = read_state(emulator.store)
    return {
        "riskDetections": len(state.detections),
        "riskyUsers": len(state.risky_users),
        "revocations": len(revocations(emulator.store)),
        "budget": emulator.identity_protection_bucket.state(),
    }


@admin_routes.get("/identity-protection")
def admin_identity_protection(call: Call) -> Response:
    return Response.json(admin_state(call.emulator))


@admin_routes.post("/identity-protection/reset")
def admin_reset_identity_protection(call: Call) -> Response:
    """Forget detections, risky users and revocations and refill the budget; the directory stays."""
    call.store.extensions.pop(EXTENSION, None)
    call.store.extensions.pop(REVOCATIONS_EXTENSION, None)
    call.emulator.identity_protection_bucket.fill()
    return Response.json(admin_state(call.emulator))


@admin_routes.post("/identity-protection/budget")
def admin_configure_budget(call: Call) -> Response:
    """Replace the budget now (a full bucket), e.g. ``{"enabled": false}``; a reset restores the startup
    budget unless its body names another."""
    try:
        budget = IdentityProtectionBudget.from_json(call.request.json())
    except ValueError as exc:
        raise bad_request(str(exc), code="BadRequest") from None
    configure_budget(call.emulator, budget)
    return Response.json(call.emulator.identity_protection_bucket.state())
