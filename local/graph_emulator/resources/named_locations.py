"""/identity/conditionalAccess/namedLocations: list, create, get, update, delete, in Graph's shapes.

Two kinds, told apart by ``@odata.type`` (``namedLocation`` itself is abstract, so a create without
it is refused):

- ``#microsoft.graph.ipNamedLocation``: ``ipRanges`` (each ``#microsoft.graph.iPv4CidrRange`` or
  ``#microsoft.graph.iPv6CidrRange`` with a ``cidrAddress``; Entra refuses ranges wider than /8) and
  ``isTrusted`` (default false);
- ``#microsoft.graph.countryNamedLocation``: ``countriesAndRegions`` (ISO 3166-1 alpha-2 codes),
  ``includeUnknownCountriesAndRegions`` (default false) and ``countryLookupMethod``
  (``clientIpAddress``, the default, or ``authenticatorAppGps``).

A PATCH must carry the location's ``@odata.type`` (Graph's documented requirement) and cannot change
it. Entra refuses to delete a named location a Conditional Access policy references, and one marked
trusted (clear ``isTrusted`` first). Graph documents these rules but not each refusal's wording: the
emulator answers 400 ``BadRequest`` with a message naming the property. Every call counts against the
Conditional Access limit when ``rateLimits.conditionalAccess`` is on.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from iso3166 import countries_by_alpha2

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import GraphError, JsonObject, not_found
from local.graph_emulator.limits import CONDITIONAL_ACCESS
from local.graph_emulator.odata import ResourceShape, check_options, context_url, parse_select, project
from local.graph_emulator.odata_filter import BASIC, FilterRules, parse_filter
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

__all__ = ["EXTENSION", "location_ids", "routes"]

routes = RouteTable()

EXTENSION: Final = "namedLocations"
BASE: Final = "/identity/conditionalAccess/namedLocations"
IP_TYPE: Final = "#microsoft.graph.ipNamedLocation"
COUNTRY_TYPE: Final = "#microsoft.graph.countryNamedLocation"
RANGE_TYPES: Final = {"#microsoft.graph.iPv4CidrRange": 4, "#microsoft.graph.iPv6CidrRange": 6}
LOOKUP_METHODS: Final = ("clientIpAddress", "authenticatorAppGps")
WIDEST_PREFIX: Final = 8
_COMMON: Final = frozenset(
    {"id", "displayName", "createdDateTime", "modifiedDateTime", "@odata.type", "@odata.context"}
)
_OWN: Final = {
    IP_TYPE: frozenset({"ipRanges", "isTrusted"}),
    COUNTRY_TYPE: frozenset(
        {"countriesAndRegions", "includeUnknownCountriesAndRegions", "countryLookupMethod"}
    ),
}
FILTERS = FilterRules(
    resource="NamedLocation", properties={"id": frozenset({"eq", "in"}), "displayName": BASIC}
)
SHAPE = ResourceShape(
    "namedLocation",
    frozenset(
        {"id", "displayName", "createdDateTime", "modifiedDateTime"} | _OWN[IP_TYPE] | _OWN[COUNTRY_TYPE]
    ),
    None,
    FILTERS,
)


@dataclass
class NamedLocations:
    """The tenant's named locations by id, in creation order (each with its ``@odata.type``)."""

    by_id: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.by_id)

    def to_json(self) -> JsonObject:
        return {"namedLocations": list(self.by_id.values())}

    @classmethod
    def from_json(cls, data: JsonObject) -> NamedLocations:
        return cls(by_id={loc["id"]: loc for loc in data.get("namedLocations", [])})


register_extension(EXTENSION, NamedLocations.from_json)


def location_ids(store: TenantStore) -> frozenset[str]:
    """The ids of every named location (what a Conditional Access policy may reference)."""
    return frozenset(store.extension(EXTENSION, NamedLocations).by_id)


def _state(call: Call) -> NamedLocations:
    call.emulator.rate_limits.check(CONDITIONAL_ACCESS)
    return call.store.extension(EXTENSION, NamedLocations)


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _require(call: Call) -> JsonObject:
    location = _state(call).by_id.get(call.params["location_id"])
    if location is None:
        raise not_found(call.params["location_id"])
    return location


def _view(location: JsonObject, select: list[str] | None = None) -> JsonObject:
    own = _OWN[location["@odata.type"]]
    shown = [name for name in select if name in own | _COMMON] if select is not None else None
    return {"@odata.type": location["@odata.type"], **project(location, _own_shape(location), shown)}


def _own_shape(location: JsonObject) -> ResourceShape:
    own = _OWN[location["@odata.type"]]
    return ResourceShape(
        location["@odata.type"].rsplit(".", 1)[-1],
        frozenset({"id", "displayName", "createdDateTime", "modifiedDateTime"} | own),
        None,
        FILTERS,
    )


@routes.get(BASE)
def list_locations(call: Call) -> Response:
    check_options(call.request, allowed={"$filter", "$select"})
    select = parse_select(call.request, SHAPE)
    items = list(_state(call).by_id.values())
    raw_filter = call.request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, FILTERS, advanced=False)
        items = [loc for loc in items if predicate(loc)]
    return Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/namedLocations"),
            "value": [_view(loc, select) for loc in items],
        }
    )


@routes.post(BASE)
def create_location(call: Call) -> Response:
    state = _state(call)
    body = call.request.json_object()
    odata_type = body.get("@odata.type")
    if odata_type not in _OWN:
        raise _bad(
            "The '@odata.type' property is required and must be '#microsoft.graph.ipNamedLocation' or "
            f"'#microsoft.graph.countryNamedLocation' (namedLocation is abstract); got {odata_type!r}."
        )
    now = iso_utc(call.emulator.clock.now())
    location: JsonObject = {
        "@odata.type": odata_type,
        "id": str(uuid.uuid4()),
        **validated(body, odata_type),
        "createdDateTime": now,
        "modifiedDateTime": now,
    }
    state.by_id[location["id"]] = location
    response = Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/namedLocations/$entity"),
            **_view(location),
        }
    )
    response.status = 201
    return response


@routes.get(BASE + "/{location_id}")
def get_location(call: Call) -> Response:
    check_options(call.request, allowed={"$select"})
    location = _require(call)
    return Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/namedLocations/$entity"),
            **_view(location, parse_select(call.request, SHAPE)),
        }
    )


@routes.patch(BASE + "/{location_id}")
def update_location(call: Call) -> Response:
    location = _require(call)
    body = call.request.json_object()
    odata_type = body.get("@odata.type")
    if odata_type is None:
        raise _bad(
            "The '@odata.type' property is required in an update: "
            f"'{location['@odata.type']}' for this location."
        )
    if odata_type != location["@odata.type"]:
        raise _bad(
            f"The '@odata.type' of a named location cannot change: it is '{location['@odata.type']}', "
            f"the request says {odata_type!r}."
        )
    writable = {k: v for k, v in location.items() if k not in _COMMON or k == "displayName"}
    candidate = {**writable, **{k: v for k, v in body.items() if k not in _COMMON or k == "displayName"}}
    location.update(validated(candidate, odata_type))
    location["modifiedDateTime"] = iso_utc(call.emulator.clock.now())
    return Response.no_content()


@routes.delete(BASE + "/{location_id}")
def delete_location(call: Call) -> Response:
    location = _require(call)
    if location.get("isTrusted"):
        raise _bad(
            f"Named location '{location['id']}' is marked trusted and cannot be deleted; "
            "set isTrusted to false first."
        )
    users = _referencing_policies(call.store, location["id"])
    if users:
        raise _bad(
            f"Named location '{location['id']}' is referenced by Conditional Access policies "
            f"({', '.join(users)}) and cannot be deleted; remove it from them first."
        )
    del call.store.extension(EXTENSION, NamedLocations).by_id[location["id"]]
    return Response.no_content()


def _referencing_policies(store: TenantStore, location_id: str) -> list[str]:
    # Read through the extension's JSON: the policies' module builds on this one, not the reverse.
    extension = store.extensions.get("conditionalAccess")
    policies = extension.to_json().get("policies", []) if extension is not None else []
    names = []
    for policy in policies:
        locations = ((policy.get("conditions") or {}).get("locations")) or {}
        refs = [*(locations.get("includeLocations") or []), *(locations.get("excludeLocations") or [])]
        if location_id in refs:
            names.append(str(policy.get("displayName")))
    return names


def validated(body: JsonObject, odata_type: str) -> JsonObject:
    """The writable properties of a named location of ``odata_type``, with Graph's defaults.

    Raises:
        GraphError: 400 BadRequest naming the first property that is unknown, missing or invalid.
    """
    unknown = set(body) - _COMMON - _OWN[odata_type]
    if unknown:
        raise _bad(f"Property '{sorted(unknown)[0]}' does not exist on type '{odata_type[1:]}'.")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise _bad("displayName: a value is required.")
    if len(name) > 256:
        raise _bad("displayName: at most 256 characters.")
    own = _ip(body) if odata_type == IP_TYPE else _country(body)
    return {"displayName": name, **own}


def _ip(body: JsonObject) -> JsonObject:
    ranges = body.get("ipRanges")
    if not isinstance(ranges, list) or not ranges:
        raise _bad("ipRanges: at least one IP range is required.")
    checked = [_ip_range(item, index) for index, item in enumerate(ranges)]
    trusted = body.get("isTrusted", False)
    if not isinstance(trusted, bool):
        raise _bad(f"isTrusted: must be true or false, got {trusted!r}.")
    return {"ipRanges": checked, "isTrusted": trusted}


def _ip_range(item: Any, index: int) -> JsonObject:
    where = f"ipRanges[{index}]"
    if not isinstance(item, dict) or item.get("@odata.type") not in RANGE_TYPES:
        raise _bad(
            f"{where}: each range needs '@odata.type' '#microsoft.graph.iPv4CidrRange' or "
            "'#microsoft.graph.iPv6CidrRange' and a cidrAddress."
        )
    address = item.get("cidrAddress")
    try:
        network = ipaddress.ip_network(str(address), strict=False)
    except ValueError:
        network = None
    if network is None or "/" not in str(address):
        raise _bad(f"{where}.cidrAddress: {address!r} is not a valid CIDR range (e.g. 203.0.113.0/24).")
    if network.version != RANGE_TYPES[item["@odata.type"]]:
        raise _bad(f"{where}.cidrAddress: {address} is not an IPv{RANGE_TYPES[item['@odata.type']]} range.")
    if network.prefixlen < WIDEST_PREFIX:
        raise _bad(f"{where}.cidrAddress: {address} is too wide; the prefix must be /8 or longer.")
    return {"@odata.type": item["@odata.type"], "cidrAddress": address}


def _country(body: JsonObject) -> JsonObject:
    codes = body.get("countriesAndRegions")
    if not isinstance(codes, list) or not codes:
        raise _bad("countriesAndRegions: at least one country or region is required.")
    for code in codes:
        if not isinstance(code, str) or len(code) != 2 or code.upper() not in countries_by_alpha2:
            raise _bad(f"countriesAndRegions: {code!r} is not an ISO 3166-1 alpha-2 country or region code.")
    unknown = body.get("includeUnknownCountriesAndRegions", False)
    if not isinstance(unknown, bool):
        raise _bad(f"includeUnknownCountriesAndRegions: must be true or false, got {unknown!r}.")
    method = body.get("countryLookupMethod") or "clientIpAddress"
    if method not in LOOKUP_METHODS:
        raise _bad(f"countryLookupMethod: must be one of {', '.join(LOOKUP_METHODS)}, got {method!r}.")
    return {
        "countriesAndRegions": [c.upper() for c in codes],
        "includeUnknownCountriesAndRegions": unknown,
        "countryLookupMethod": method,
    }
