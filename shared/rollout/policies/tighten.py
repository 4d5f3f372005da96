"""Edits that tighten enforcement for users a policy already enforces: a narrower allowed-countries
list, a trusted range removed, more risk levels, block instead of MFA, fewer controls standing in
for MFA. A wave promotion is gated; these are not, so ``policies plan`` flags each one ("affects
enforced users now") and the apply refuses them unless the operator accepts them
(``policies apply --accept-enforced-change``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from shared.rollout.policies.diff import FieldChange, PolicyDiff
from shared.rollout.policies.locations import LocationDiff
from shared.rollout.policies.templates import ENABLED, PolicyBody

__all__ = ["enforced_changes"]

# A field whose growth tightens (more sign-ins caught), and one whose shrinking does.
_GROWS: Final = frozenset(
    {
        "conditions.signInRiskLevels",
        "conditions.userRiskLevels",
        "conditions.applications.includeApplications",
        "conditions.applications.includeUserActions",
        "conditions.clientAppTypes",
        "conditions.locations.includeLocations",
        "conditions.users.includeRoles",
    }
)
_SHRINKS: Final = frozenset(
    {
        "conditions.locations.excludeLocations",
        "conditions.applications.excludeApplications",
        "conditions.users.excludeRoles",
    }
)
# Who a policy covers: a wave promotion (gated) or break-glass (never tightening) moves these.
_MEMBERSHIP: Final = frozenset(
    {
        "conditions.users.includeUsers",
        "conditions.users.includeGroups",
        "conditions.users.excludeUsers",
        "conditions.users.excludeGroups",
        "state",
    }
)
# Changes that never make a sign-in fail that passed before.
_HARMLESS: Final = frozenset({"displayName", "sessionControls.signInFrequency.isEnabled"})


def _set(value: Any) -> set[str]:
    if value is None:
        return set()
    return {str(v).casefold() for v in (value if isinstance(value, list) else [value])}


def _tightens(fc: FieldChange, live: PolicyBody) -> bool:
    if fc.path in _MEMBERSHIP or fc.path in _HARMLESS or fc.path.startswith("sessionControls"):
        return False
    old, new = _set(fc.old), _set(fc.new)
    if fc.path in _GROWS:
        return not new <= old or (fc.path == "conditions.locations.includeLocations" and new != old)
    if fc.path in _SHRINKS:
        return not old <= new
    if fc.path == "grantControls.builtInControls":
        operator = str(((live.get("grantControls") or {}).get("operator")) or "OR")
        # OR: an alternative removed (block replacing mfa removes mfa); AND: a control added.
        return (not old <= new) if operator == "OR" else (not new <= old) or "block" in new - old
    if fc.path == "grantControls.operator":
        return str(fc.new).upper() == "AND"
    return True  # anything else: assume it may tighten


def _enabled_after(change: Any) -> bool:
    live = change.live or {}
    after = change.desired.state if change.desired.wave_driven else live.get("state")
    return bool(live.get("state") == ENABLED and after == ENABLED)


def _location_tightens(fc: FieldChange) -> bool:
    if fc.path == "countriesAndRegions":
        return not _set(fc.new) >= _set(fc.old)
    if fc.path == "includeUnknownCountriesAndRegions":
        return bool(fc.old) and not fc.new
    if fc.path == "ipRanges":
        return not _set(fc.new) >= _set(fc.old)
    return fc.path in ("@odata.type", "countryLookupMethod")


def enforced_changes(
    diff: PolicyDiff, locations: LocationDiff, live: Sequence[Mapping[str, Any]]
) -> tuple[str, ...]:
    """One line per edit that tightens an enabled policy (or a named location one references)."""
    lines: list[str] = []
    for change in diff.writes:
        if change.kind != "update" or change.live is None or not _enabled_after(change):
            continue
        for fc in change.fields:
            if _tightens(fc, change.live):
                lines.append(f"{change.name!r} {fc.path}: {fc.old!r} -> {fc.new!r}")
    enabled = [p for p in live if p.get("state") == ENABLED]
    for location in locations.writes:
        if location.kind != "update" or not location.location_id:
            continue
        users = [
            str(p.get("displayName"))
            for p in enabled
            if location.location_id.casefold()
            in _set(((p.get("conditions") or {}).get("locations") or {}).get("excludeLocations"))
            | _set(((p.get("conditions") or {}).get("locations") or {}).get("includeLocations"))
        ]
        if not users:
            continue
        for fc in location.fields:
            if _location_tightens(fc):
                lines.append(
                    f"named location {location.name!r} {fc.path}: {fc.old!r} -> {fc.new!r} "
                    f"(used by enabled {', '.join(repr(u) for u in users)})"
                )
    return tuple(lines)
