"""WaveGuard's named locations: trusted networks (``ipNamedLocation``, ``isTrusted``) and the allowed
countries (``countryNamedLocation``), rendered from the plan and matched to the live ones by display
name, like the policies.

A policy references a named location by id. One that does not exist yet has no id when the plan is
made, so the policies reference it as ``pending-named-location:<key>`` until the apply has created
it; the apply writes the named locations first and puts the new ids in before any policy write.
WaveGuard never deletes a named location.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from shared.config import RolloutPlan
from shared.errors import PermanentError
from shared.rollout.policies.diff import FieldChange

__all__ = [
    "COUNTRIES_KEY",
    "COUNTRY_TYPE",
    "IP_TYPE",
    "LOCATION_TITLES",
    "PENDING_PREFIX",
    "DesiredLocation",
    "LocationChange",
    "LocationDiff",
    "country_location",
    "diff_locations",
    "ip_location",
    "is_pending",
    "location_problems",
    "location_refs",
    "pending",
    "render_locations",
    "resolve_pending",
    "trusted_key",
]

IP_TYPE: Final = "#microsoft.graph.ipNamedLocation"
COUNTRY_TYPE: Final = "#microsoft.graph.countryNamedLocation"
_IPV4_RANGE: Final = "#microsoft.graph.iPv4CidrRange"
_IPV6_RANGE: Final = "#microsoft.graph.iPv6CidrRange"
COUNTRIES_KEY: Final = "countries"
# Names after the prefix; the name is how WaveGuard finds its named locations again.
LOCATION_TITLES: Final = {COUNTRIES_KEY: "Allowed countries", "trusted": "Trusted network: {name}"}
PENDING_PREFIX: Final = "pending-named-location:"

LocationKind = Literal["create", "update", "unchanged"]


@dataclass(frozen=True, slots=True)
class DesiredLocation:
    """One named location WaveGuard wants, in Graph's JSON shape (with ``@odata.type``)."""

    key: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["displayName"])

    @property
    def odata_type(self) -> str:
        return str(self.body["@odata.type"])


def trusted_key(name: str) -> str:
    return f"trusted:{name.casefold()}"


def ip_location(name: str, cidrs: Sequence[str], *, trusted: bool = False) -> dict[str, Any]:
    """An ``ipNamedLocation``: the ranges (IPv4 and IPv6 each typed as Graph wants), trusted or not."""
    ranges = sorted({str(ipaddress.ip_network(c)) for c in cidrs}, key=str.casefold)
    return {
        "@odata.type": IP_TYPE,
        "displayName": name,
        "isTrusted": trusted,
        "ipRanges": [
            {
                "@odata.type": _IPV4_RANGE if ipaddress.ip_network(c).version == 4 else _IPV6_RANGE,
                "cidrAddress": c,
            }
            for c in ranges
        ],
    }


def country_location(name: str, countries: Sequence[str], *, include_unknown: bool) -> dict[str, Any]:
    """A ``countryNamedLocation`` looked up by the client's IP address."""
    return {
        "@odata.type": COUNTRY_TYPE,
        "displayName": name,
        "countriesAndRegions": sorted({c.upper() for c in countries}),
        "includeUnknownCountriesAndRegions": include_unknown,
        "countryLookupMethod": "clientIpAddress",
    }


def render_locations(plan: RolloutPlan) -> list[DesiredLocation]:
    """The trusted networks (in plan order), then the allowed countries when enabled."""
    config = plan.policies
    prefix = config.name_prefix
    desired = [
        DesiredLocation(
            trusted_key(location.name),
            ip_location(
                prefix + LOCATION_TITLES["trusted"].format(name=location.name),
                location.ip_ranges,
                trusted=location.is_trusted,
            ),
        )
        for location in config.trusted_locations
    ]
    countries = config.allowed_countries
    if countries.enabled:
        body = country_location(
            prefix + LOCATION_TITLES[COUNTRIES_KEY],
            countries.countries,
            include_unknown=countries.include_unknown_countries,
        )
        desired.append(DesiredLocation(COUNTRIES_KEY, body))
    return desired


def pending(key: str) -> str:
    """The stand-in id of a named location the apply has yet to create."""
    return PENDING_PREFIX + key


def is_pending(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PENDING_PREFIX)


@dataclass(frozen=True, slots=True)
class LocationChange:
    """What happens to one desired named location."""

    kind: LocationKind
    desired: DesiredLocation
    live: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()

    @property
    def name(self) -> str:
        return self.desired.name

    @property
    def location_id(self) -> str | None:
        return str(self.live["id"]) if self.live and self.live.get("id") else None


@dataclass(frozen=True, slots=True)
class LocationDiff:
    """Every desired named location's change, plus live WaveGuard ones the plan no longer renders."""

    changes: tuple[LocationChange, ...] = ()
    orphans: tuple[Mapping[str, Any], ...] = field(default=())
    # Every named location id in the tenant (WaveGuard's or not): what a policy may reference.
    tenant_ids: frozenset[str] = frozenset()

    @property
    def writes(self) -> tuple[LocationChange, ...]:
        return tuple(c for c in self.changes if c.kind != "unchanged")

    def count(self, kind: LocationKind) -> int:
        return sum(1 for c in self.changes if c.kind == kind)


def _comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The properties WaveGuard sets, normalised (sets sorted, Graph's defaults filled in)."""
    if body.get("@odata.type") == IP_TYPE:
        ranges = body.get("ipRanges") or []
        cidrs = [_network(r.get("cidrAddress")) for r in ranges if isinstance(r, Mapping)]
        return {"isTrusted": bool(body.get("isTrusted")), "ipRanges": sorted(set(cidrs))}
    return {
        "countriesAndRegions": sorted(str(c).upper() for c in body.get("countriesAndRegions") or []),
        "includeUnknownCountriesAndRegions": bool(body.get("includeUnknownCountriesAndRegions")),
        "countryLookupMethod": body.get("countryLookupMethod") or "clientIpAddress",
    }


def _network(value: Any) -> str:
    """A CIDR as ``ipaddress`` writes it (Graph may answer 2001:DB8:0::/48 for 2001:db8::/48)."""
    text = str(value or "").strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text.lower()


def _field_changes(desired: DesiredLocation, live: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    if live.get("@odata.type") != desired.odata_type:
        return (FieldChange("@odata.type", live.get("@odata.type"), desired.odata_type),)
    want, have = _comparable(desired.body), _comparable(live)
    return tuple(FieldChange(k, have.get(k), want[k]) for k in sorted(want) if have.get(k) != want[k])


def diff_locations(
    desired: Sequence[DesiredLocation], live: Sequence[Mapping[str, Any]], name_prefix: str
) -> LocationDiff:
    """Match desired to live named locations by display name (the first of duplicates) and compare."""
    ours = [loc for loc in live if str(loc.get("displayName") or "").startswith(name_prefix)]
    by_name: dict[str, Mapping[str, Any]] = {}
    for location in ours:
        by_name.setdefault(str(location["displayName"]).casefold(), location)
    changes: list[LocationChange] = []
    for want in desired:
        have = by_name.get(want.name.casefold())
        if have is None:
            changes.append(LocationChange("create", want))
            continue
        fields = _field_changes(want, have)
        changes.append(LocationChange("update" if fields else "unchanged", want, have, fields))
    matched = {id(c.live) for c in changes if c.live is not None}
    orphans = tuple(loc for loc in ours if id(loc) not in matched)
    tenant_ids = frozenset(str(loc["id"]).lower() for loc in live if loc.get("id"))
    return LocationDiff(tuple(changes), orphans, tenant_ids)


def location_problems(diff: LocationDiff) -> list[tuple[str, str, str]]:
    """(name, field, message) for what an apply cannot repair: a live WaveGuard named location of the
    other kind (Graph cannot change a location's type), or two live ones sharing a WaveGuard name."""
    problems: list[tuple[str, str, str]] = []
    for change in diff.changes:
        if change.live is not None and change.live.get("@odata.type") != change.desired.odata_type:
            problems.append(
                (
                    change.name,
                    "@odata.type",
                    f"the live named location [{change.location_id}] is a {change.live.get('@odata.type')}, "
                    f"the plan wants a {change.desired.odata_type}; Graph cannot change the type: "
                    "rename or delete the live one",
                )
            )
    names = [str(c.desired.name).casefold() for c in diff.changes if c.live is not None]
    for orphan in diff.orphans:
        if str(orphan.get("displayName") or "").casefold() in names:
            problems.append(
                (
                    str(orphan.get("displayName")),
                    "displayName",
                    f"several live named locations have this name; delete the extra one [{orphan.get('id')}]",
                )
            )
    return problems


def location_refs(diff: LocationDiff) -> dict[str, str]:
    """Each desired named location's id: the live one's, or a pending stand-in until it is created."""
    return {c.desired.key: c.location_id or pending(c.desired.key) for c in diff.changes}


def resolve_pending(value: Any, ids: Mapping[str, str]) -> Any:
    """``value`` with every pending stand-in replaced by the created named location's id.

    Raises:
        PermanentError: a stand-in whose named location was not created (nothing is sent then).
    """
    if isinstance(value, Mapping):
        return {k: resolve_pending(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_pending(v, ids) for v in value]
    if is_pending(value):
        key = str(value)[len(PENDING_PREFIX) :]
        if key not in ids:
            raise PermanentError(
                f"named location {key!r} was not created; the policy referencing it is not sent"
            )
        return ids[key]
    return value
