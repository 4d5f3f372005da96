"""Desired versus live policies: what to create, what to update (field by field), what is unchanged.

Lists in a Conditional Access policy are sets (ids, client app types, controls), so they are
compared order-insensitively. Server-managed fields never count as a difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.rollout.policies.templates import PolicyBody

if TYPE_CHECKING:
    # Type only: render imports the named locations, which build on this module's FieldChange.
    from shared.rollout.policies.render import DesiredPolicy

__all__ = [
    "SERVER_MANAGED_FIELDS",
    "FieldChange",
    "PolicyChange",
    "PolicyDiff",
    "diff_policies",
    "flatten",
    "is_waveguard_policy",
    "only_reduces",
    "patch_body",
]

SERVER_MANAGED_FIELDS: Final = frozenset(
    {
        "id",
        "createdDateTime",
        "modifiedDateTime",
        "templateId",
        "deletedDateTime",
        "partialEnablementStrategy",
    }
)

# "retire": a live policy WaveGuard created (one of its titles) that the plan no longer renders, still
# enabled (an option turned off): the apply sets it report-only (audited) instead of leaving it to
# enforce unmanaged. The operator deletes it when it is no longer wanted.
ChangeKind = Literal["create", "update", "unchanged", "retire"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs: its JSON path (``conditions.users.excludeUsers``), old and new value."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What happens to one desired policy."""

    kind: ChangeKind
    desired: DesiredPolicy
    live: PolicyBody | None = None
    fields: tuple[FieldChange, ...] = ()

    @property
    def name(self) -> str:
        return self.desired.name

    @property
    def policy_id(self) -> str | None:
        return str(self.live["id"]) if self.live and self.live.get("id") else None


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """Every desired policy's change, plus live WaveGuard policies the plan no longer renders."""

    changes: tuple[PolicyChange, ...]
    orphans: tuple[PolicyBody, ...] = field(default=())

    @property
    def writes(self) -> tuple[PolicyChange, ...]:
        return tuple(c for c in self.changes if c.kind != "unchanged")

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for c in self.changes if c.kind == kind)


def is_waveguard_policy(policy: Mapping[str, Any], name_prefix: str) -> bool:
    """True when the policy's display name carries WaveGuard's prefix (how WaveGuard finds its own)."""
    return str(policy.get("displayName") or "").startswith(name_prefix)


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _canonical(value: Any) -> Any:
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, str) for v in items):
            return sorted(set(items), key=str.casefold)
        return items
    return value


def flatten(body: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by JSON path, without server-managed fields, OData annotations or empty values."""
    leaves: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata") or (not prefix and key in SERVER_MANAGED_FIELDS):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            leaves.update(flatten(value, path + "."))
        elif not _empty(value):
            leaves[path] = _canonical(value)
    return leaves


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, list) and isinstance(new, list):
        return [str(v).casefold() for v in old] == [str(v).casefold() for v in new]
    if isinstance(old, str) and isinstance(new, str):
        return old.casefold() == new.casefold() if _looks_like_id(new) else old == new
    return bool(old == new)


def _looks_like_id(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def field_changes(desired: DesiredPolicy, live: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The fields where live differs from desired; ``state`` only counts for wave-driven policies."""
    want = flatten(desired.body)
    have = flatten(live)
    if not desired.wave_driven:
        # Updates keep the live state: enforcement is a wave promotion or an operator's call.
        want.pop("state", None)
        have.pop("state", None)
    changes = [
        FieldChange(path, have.get(path), want.get(path))
        for path in sorted(set(want) | set(have))
        if not _same(have.get(path), want.get(path))
    ]
    return tuple(changes)


def diff_policies(
    desired: Sequence[DesiredPolicy], live: Sequence[PolicyBody], name_prefix: str
) -> PolicyDiff:
    """Match desired to live WaveGuard policies by display name and compare them field by field."""
    ours = [p for p in live if is_waveguard_policy(p, name_prefix)]
    by_name: dict[str, PolicyBody] = {}
    for policy in ours:
        by_name.setdefault(str(policy["displayName"]).casefold(), policy)
    changes: list[PolicyChange] = []
    for want in desired:
        have = by_name.get(want.name.casefold())
        if have is None:
            changes.append(PolicyChange("create", want))
            continue
        fields = field_changes(want, have)
        changes.append(PolicyChange("update" if fields else "unchanged", want, have, fields))
    matched = {id(c.live) for c in changes if c.live is not None}
    # Includes a second live policy sharing a desired name: the lint then names the duplicate.
    orphans = [p for p in ours if id(p) not in matched]
    wanted = {want.name.casefold() for want in desired}
    retired = [
        _retire(key, p)
        for p in orphans
        if (key := _waveguard_key(p, name_prefix)) is not None
        and str(p["displayName"]).casefold() not in wanted
        and p.get("state") == "enabled"
    ]
    gone = {id(c.live) for c in retired}
    return PolicyDiff((*changes, *retired), tuple(p for p in orphans if id(p) not in gone))


def _waveguard_key(policy: Mapping[str, Any], name_prefix: str) -> str | None:
    """The key of the WaveGuard title this live policy carries, or None (any other name)."""
    from shared.rollout.policies.render import POLICY_TITLES  # render builds on this module

    name = str(policy.get("displayName") or "").casefold()
    return next((k for k, t in POLICY_TITLES.items() if (name_prefix + t).casefold() == name), None)


def _retire(key: str, live: PolicyBody) -> PolicyChange:
    from shared.rollout.policies.render import DesiredPolicy
    from shared.rollout.policies.templates import REPORT_ONLY

    body = {**live, "state": REPORT_ONLY}
    return PolicyChange(
        "retire",
        DesiredPolicy(key, body, wave_driven=True),
        live,
        (FieldChange("state", live.get("state"), REPORT_ONLY),),
    )


# The fields an update may change and still only take enforcement away from an enabled policy.
_NARROWING: Final = frozenset({"state", "conditions.users.includeUsers", "conditions.users.includeGroups"})
_WIDENING_EXCLUSIONS: Final = frozenset({"conditions.users.excludeUsers", "conditions.users.excludeGroups"})


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    return {str(v).casefold() for v in (value if isinstance(value, list) else [value])}


def only_reduces(diff: PolicyDiff) -> bool:
    """Whether applying this diff only takes enforcement away (a rollback, an option turned off): it
    writes something, creates nothing, and every update leaves its policy not enabled, or enabled as
    before with only fewer users included or more excluded."""
    if not diff.writes:
        return False
    for change in diff.writes:
        if change.kind == "create" or change.live is None:
            return False
        live_state = change.live.get("state")
        after = change.desired.state if change.desired.wave_driven else live_state
        if after != "enabled":
            continue
        if live_state != "enabled":
            return False
        for fc in change.fields:
            if fc.path in _NARROWING:
                if fc.path != "state" and not _as_set(fc.new) - {"none"} <= _as_set(fc.old):
                    return False
            elif fc.path in _WIDENING_EXCLUSIONS:
                if not _as_set(fc.old) <= _as_set(fc.new):
                    return False
            else:
                return False
    return True


def patch_body(change: PolicyChange) -> PolicyBody:
    """The PATCH for an update: every top-level property with a change, whole, from the desired body.

    Whole complex properties (``conditions``, ``grantControls``), so the result does not depend on
    whether Graph merges or replaces them; a live-only leaf is cleared with an explicit null.
    """
    touched = {fc.path.split(".", 1)[0] for fc in change.fields}
    body: PolicyBody = {}
    for top in sorted(touched):
        if top in change.desired.body:
            body[top] = _with_nulls(change.desired.body[top], top, change.fields)
        else:
            body[top] = None
    return body


def _with_nulls(value: Any, top: str, fields: Sequence[FieldChange]) -> Any:
    if not isinstance(value, Mapping):
        return value
    result: dict[str, Any] = dict(value)
    for fc in fields:
        parts = fc.path.split(".")
        if parts[0] != top or fc.new is not None:
            continue
        # Clear the highest part of the live-only path that the desired body does not have.
        node = result
        for part in parts[1:]:
            child = node.get(part, _MISSING)
            if child is _MISSING:
                node[part] = None
                break
            if not isinstance(child, Mapping):
                break
            node[part] = node = dict(child)
    return result


_MISSING: Final = object()
