"""Plan and apply the baseline: desired vs live, the lint, then paced, audited, report-only writes
(named locations first, then the policies that reference them).

Idempotent by construction: every run re-reads the live policies and writes only the
differences, so a second apply (or a rerun after a crash halfway) writes nothing that is
already there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from shared.config import RolloutPlan
from shared.errors import PermanentError, RetryableError, SafetyViolationError
from shared.rollout.policies.diff import (
    PolicyChange,
    PolicyDiff,
    diff_policies,
    is_waveguard_policy,
    only_reduces,
    patch_body,
)
from shared.rollout.policies.lint import LintContext, LintReport, ReferenceLookup, lint_policies
from shared.rollout.policies.locations import (
    LocationChange,
    LocationDiff,
    diff_locations,
    location_problems,
    location_refs,
    render_locations,
    resolve_pending,
)
from shared.rollout.policies.render import (
    DesiredPolicy,
    TenantIds,
    legacy_policies,
    read_wave_states,
    render_policies,
)
from shared.rollout.policies.soak import Soak, read_soak, record_soak
from shared.rollout.policies.templates import REPORT_ONLY, PolicyBody
from shared.rollout.policies.tighten import enforced_changes
from shared.rollout.wave_state import WaveState
from shared.state import (
    AsyncAuditPort,
    AsyncIdempotencyPort,
    AsyncKeyValuePort,
    AuditEntry,
    Clock,
    ConcurrencyError,
    utc_now,
)
from shared.telemetry import log_context, span

__all__ = [
    "APPLY_LOCK_KEY",
    "LOCATIONS_NAMESPACE",
    "POLICIES_NAMESPACE",
    "ApplyResult",
    "PolicyApi",
    "PolicyPlan",
    "apply_lock",
    "apply_policy_plan",
    "build_policy_plan",
    "record_report_only",
]

# KV namespace: key = policy id, value = when WaveGuard first saw/wrote it in report-only.
POLICIES_NAMESPACE: Final = "policies"
# KV namespace: key = named location id, value = when WaveGuard created (or adopted) it.
LOCATIONS_NAMESPACE: Final = "named-locations"
log = logging.getLogger(__name__)

# One apply at a time per tenant: two concurrent runs could both create the same policy.
APPLY_LOCK_KEY: Final = "policies:apply"
# A run that died holding the lock is taken over after this long.
_LOCK_EXPIRY: Final = timedelta(minutes=15)
_SPECIAL: Final = frozenset({"all", "none", "guestsorexternalusers"})


class PolicyApi(Protocol):
    """The Conditional Access operations apply needs (Graph's, or a fake in unit tests)."""

    async def list_policies(self) -> list[dict[str, Any]]: ...

    async def create_policy(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def update_policy(self, policy_id: str, patch: dict[str, Any]) -> None: ...

    async def list_named_locations(self) -> list[dict[str, Any]]: ...

    async def create_named_location(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def update_named_location(self, location_id: str, patch: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """Everything ``waveguard policies plan`` shows, and what ``apply`` executes."""

    desired: tuple[DesiredPolicy, ...]
    live: tuple[PolicyBody, ...]
    diff: PolicyDiff
    lint: LintReport
    wave_states: Mapping[str, WaveState]
    after_apply: tuple[PolicyBody, ...]
    locations: LocationDiff = field(default_factory=LocationDiff)
    # Enforced waves a block or risk pair still holds in its report-only twin (soak.py), and until when.
    soaking: tuple[Soak, ...] = ()
    # Lines plan and apply print (a legacy WaveGuard policy to delete, a named location adopted).
    notes: tuple[str, ...] = ()
    # Edits that tighten enforcement for users already enforced ("affects enforced users now"): the
    # apply refuses them unless accepted (tighten.py).
    enforced_changes: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.diff.writes or self.locations.writes)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What apply wrote: created and updated policies and named locations (name, id), and how many
    writes it took."""

    created: tuple[tuple[str, str], ...] = ()
    updated: tuple[tuple[str, str], ...] = ()
    unchanged: tuple[str, ...] = ()
    correlation_id: str | None = None
    notes: tuple[str, ...] = field(default=())
    locations_created: tuple[tuple[str, str], ...] = ()
    locations_updated: tuple[tuple[str, str], ...] = ()

    @property
    def writes(self) -> int:
        return (
            len(self.created) + len(self.updated) + len(self.locations_created) + len(self.locations_updated)
        )


@contextlib.asynccontextmanager
async def apply_lock(idempotency: AsyncIdempotencyPort) -> AsyncIterator[None]:
    """Hold the tenant's policy-apply lock for the duration of one plan-and-apply.

    Raises:
        RetryableError: another apply holds the lock (retry when it is done).
    """
    claim = await idempotency.claim(APPLY_LOCK_KEY, ttl=_LOCK_EXPIRY, in_progress_expiry=_LOCK_EXPIRY)
    if not claim.acquired:
        raise RetryableError(
            "another `policies apply` is running for this tenant; retry when it has finished",
            retry_after=30.0,
        )
    try:
        yield
    finally:
        await idempotency.release(APPLY_LOCK_KEY)


def project_after_apply(diff: PolicyDiff) -> list[PolicyBody]:
    """The WaveGuard policies as they will be once the diff is applied (what the lint must pass)."""
    after: list[PolicyBody] = []
    for change in diff.changes:
        if change.kind == "create":
            after.append({**change.desired.body, "state": REPORT_ONLY})
        elif change.kind == "retire" and change.live is not None:
            after.append({**change.live, "state": REPORT_ONLY})
        elif change.kind == "update" and change.live is not None:
            state = change.desired.state if change.desired.wave_driven else change.live.get("state")
            after.append({**change.desired.body, "id": change.live.get("id"), "state": state})
        elif change.live is not None:
            after.append(change.live)
    return after + list(diff.orphans)


def _referenced(policies: Sequence[PolicyBody], keys: tuple[str, str]) -> set[str]:
    ids: set[str] = set()
    for policy in policies:
        users = ((policy.get("conditions") or {}).get("users")) or {}
        for key in keys:
            ids |= {str(v).lower() for v in users.get(key) or [] if str(v).lower() not in _SPECIAL}
    return ids


async def build_policy_plan(
    plan: RolloutPlan,
    *,
    api: PolicyApi,
    lookup: ReferenceLookup,
    tenant: TenantIds,
    kv: AsyncKeyValuePort,
    licence_p2: bool | None = None,
    licence_unreadable: str | None = None,
    clock: Clock = utc_now,
) -> PolicyPlan:
    """Render the desired named locations and policies, read the live ones, diff them and lint the
    result. ``licence_p2`` is the tenant preflight's verdict on Entra ID P2 (None: not known);
    ``licence_unreadable`` why the preflight could not read the licences (WG-CA-08 then blocks P2
    conditions).
    ``clock`` judges each block or risk pair's per-wave soak (soak.py).

    Raises:
        RetryableError: Graph or the state store failed transiently.
        PermanentError: Graph refused a read.
    """
    prefix = plan.policies.name_prefix
    states = await read_wave_states(kv, plan)
    tenant = _with_wave_group_problems(plan, tenant, states)
    live = [p for p in await api.list_policies() if is_waveguard_policy(p, prefix)]
    wanted_locations = render_locations(plan)
    # Named locations are read only when something uses them: the plan, or a live WaveGuard policy.
    read_locations = bool(wanted_locations) or any(_uses_locations(p) for p in live)
    locations = (
        diff_locations(wanted_locations, await api.list_named_locations(), prefix)
        if read_locations
        else LocationDiff()
    )
    soak = await read_soak(kv, plan, live, now=clock())
    desired = render_policies(plan, tenant, states, location_refs(locations), soak.soaked(plan))
    legacy = legacy_policies(plan, tenant, live)
    desired += [policy for policy, _ in legacy]
    notes = [note for _, note in legacy]
    notes += await _adoptions(kv, locations)
    diff = diff_policies(desired, live, prefix)
    notes += [
        f"{c.name!r} [{c.policy_id}]: WaveGuard's, no longer in the plan and enabled: set report-only "
        "(delete it in the Microsoft Entra admin center when it is no longer wanted)"
        for c in diff.changes
        if c.kind == "retire"
    ]
    after = project_after_apply(diff)
    both = after + live
    live_report_only = {str(p.get("id")) for p in live if p.get("state") == REPORT_ONLY}
    # Every policy id the lint may ask about, read from the store once, up front.
    seen_report_only = set(live_report_only)
    for policy_id in sorted({str(p["id"]) for p in both if p.get("id")} - live_report_only):
        if await kv.get(POLICIES_NAMESPACE, policy_id) is not None:
            seen_report_only.add(policy_id)
    ctx = LintContext(
        tenant=tenant,
        missing_users=frozenset(
            await lookup.missing_users(_referenced(both, ("includeUsers", "excludeUsers")))
        ),
        missing_groups=frozenset(
            await lookup.missing_groups(_referenced(both, ("includeGroups", "excludeGroups")))
        ),
        missing_roles=frozenset(
            await lookup.missing_roles(_referenced(both, ("includeRoles", "excludeRoles")))
        ),
        was_report_only=lambda pid: pid in seen_report_only,
        legacy_block_wanted=plan.policies.block_legacy_auth,
        registration_wanted=plan.policies.require_mfa_registration,
        licence_p2=licence_p2,
        location_ids=locations.tenant_ids if read_locations else None,
        location_problems=tuple(location_problems(locations)),
        licence_unreadable=licence_unreadable,
        name_prefix=prefix,
        admin_policy_wanted=plan.policies.admin_policy.enabled,
        admin_roles=frozenset(r.lower() for r in plan.policies.admin_policy.roles),
        high_risk_apps=frozenset(a.lower() for a in plan.policies.high_risk_apps),
        reduces_only=only_reduces(diff) and not locations.writes,
    )
    report = lint_policies(after, live, ctx)
    return PolicyPlan(
        tuple(desired),
        tuple(live),
        diff,
        report,
        states,
        tuple(after),
        locations,
        soak.running(plan, desired, states),
        tuple(notes),
        enforced_changes(diff, locations, live),
    )


async def _adoptions(kv: AsyncKeyValuePort, locations: LocationDiff) -> list[str]:
    """A live named location WaveGuard did not create but matches by name: the apply adopts it."""
    notes: list[str] = []
    for change in locations.changes:
        if change.location_id and await kv.get(LOCATIONS_NAMESPACE, change.location_id) is None:
            notes.append(
                f"warning: named location {change.name!r} [{change.location_id}] exists and WaveGuard did "
                "not create it: the apply adopts it by name and sets it as the plan says (rename it to "
                "keep it out of WaveGuard's hands)"
            )
    return notes


async def _remember_location(
    kv: AsyncKeyValuePort, location_id: str, name: str, *, how: str, correlation_id: str, now: datetime
) -> None:
    with contextlib.suppress(ConcurrencyError):
        value = {"displayName": name, how: now.isoformat(), "correlationId": correlation_id}
        await kv.put(LOCATIONS_NAMESPACE, location_id, value, if_absent=True)


def _uses_locations(policy: PolicyBody) -> bool:
    return bool((policy.get("conditions") or {}).get("locations"))


def _with_wave_group_problems(
    plan: RolloutPlan, tenant: TenantIds, states: Mapping[str, WaveState]
) -> TenantIds:
    """A wave past ``planned`` must have its group: the MFA policies reference it."""
    problems = [
        f"waves[{index}].group: group {wave.group} of wave {wave.name!r} ({states[wave.name]}) "
        "not found in the tenant"
        for index, wave in enumerate(plan.waves)
        if states.get(wave.name, WaveState.PLANNED) != WaveState.PLANNED
        and not tenant.wave_group_ids.get(wave.name)
    ]
    return dataclasses.replace(tenant, problems=(*tenant.problems, *problems)) if problems else tenant


async def record_report_only(
    kv: AsyncKeyValuePort, policy: PolicyBody, *, correlation_id: str | None, now: datetime
) -> None:
    """Remember that this policy ran in report-only (the first sighting wins; a rerun changes nothing).

    Raises:
        RetryableError: the store could not be reached.
    """
    if policy.get("state") != REPORT_ONLY or not policy.get("id"):
        return
    policy_id = str(policy["id"])
    if await kv.get(POLICIES_NAMESPACE, policy_id) is not None:
        return
    value = {
        "displayName": policy.get("displayName"),
        "reportOnlySince": now.isoformat(),
        "correlationId": correlation_id,
    }
    # Another run may record it first: the earlier sighting stands.
    with contextlib.suppress(ConcurrencyError):
        await kv.put(POLICIES_NAMESPACE, policy_id, value, if_absent=True)


async def apply_policy_plan(
    policy_plan: PolicyPlan,
    *,
    api: PolicyApi,
    kv: AsyncKeyValuePort,
    audit: AsyncAuditPort,
    actor: str,
    correlation_id: str,
    reason: str = "waveguard policies apply",
    clock: Clock = utc_now,
    accept_enforced_change: bool = False,
) -> ApplyResult:
    """Write the diff: creates always report-only, updates field by field; audit every write.
    An edit that tightens enforcement for users already enforced (``PolicyPlan.enforced_changes``)
    is written only when ``accept_enforced_change``.

    Raises:
        SafetyViolationError: the lint found a blocking problem, or the plan tightens enforcement for
            enforced users and that was not accepted (nothing was written).
        RetryableError / PermanentError: a Graph write failed (earlier writes stay; rerun continues).
    """
    if not policy_plan.lint.ok:
        summary = "; ".join(str(f) for f in policy_plan.lint.blocking)
        raise SafetyViolationError(
            f"the policy lint failed, nothing was written: {summary}", rule="policy-lint"
        )
    if policy_plan.enforced_changes and not accept_enforced_change:
        raise SafetyViolationError(
            "these edits affect enforced users now, nothing was written: "
            + "; ".join(policy_plan.enforced_changes)
            + ". Review them, then run `waveguard policies apply --accept-enforced-change`",
            rule="enforced-change",
        )
    for policy in policy_plan.live:
        await record_report_only(kv, policy, correlation_id=correlation_id, now=clock())
    created: list[tuple[str, str]] = []
    updated: list[tuple[str, str]] = []
    located: dict[str, list[tuple[str, str]]] = {"create": [], "update": []}
    # Named locations the policies reference, by key: the live ids, then each one created here.
    ids = {c.desired.key: c.location_id for c in policy_plan.locations.changes if c.location_id}
    writes = len(policy_plan.diff.writes) + len(policy_plan.locations.writes)
    with log_context(correlation_id=correlation_id), span("policies.apply", writes=writes):
        for location in policy_plan.locations.writes:
            done = await _write_location(
                location, api=api, audit=audit, actor=actor, correlation_id=correlation_id, reason=reason
            )
            log.info("named location %s: %s [%s]", location.kind, done[0], done[1])
            ids[location.desired.key] = done[1]
            located[location.kind].append(done)
            how = "createdAt" if location.kind == "create" else "adoptedAt"
            await _remember_location(
                kv, done[1], location.name, how=how, correlation_id=correlation_id, now=clock()
            )
        for location in policy_plan.locations.changes:
            if location.kind == "unchanged" and location.location_id:
                await _remember_location(
                    kv,
                    location.location_id,
                    location.name,
                    how="adoptedAt",
                    correlation_id=correlation_id,
                    now=clock(),
                )
        for change in _ordered(policy_plan):
            write = _create if change.kind == "create" else _update
            done = await write(
                change,
                api=api,
                kv=kv,
                audit=audit,
                actor=actor,
                correlation_id=correlation_id,
                reason=reason,
                clock=clock,
                location_ids=ids,
            )
            log.info("CA policy %s: %s [%s]", change.kind, done[0], done[1])
            (created if change.kind == "create" else updated).append(done)
    # Each wave's group is now in each twin: when it first went in starts that pair's soak.
    twin_ids = {c.name.casefold(): str(c.policy_id) for c in policy_plan.diff.changes if c.policy_id}
    twin_ids.update({name.casefold(): policy_id for name, policy_id in created})
    await record_soak(kv, policy_plan.desired, twin_ids, now=clock(), correlation_id=correlation_id)
    unchanged = tuple(c.name for c in policy_plan.diff.changes if c.kind == "unchanged")
    return ApplyResult(
        tuple(created),
        tuple(updated),
        unchanged,
        correlation_id,
        notes=policy_plan.notes,
        locations_created=tuple(located["create"]),
        locations_updated=tuple(located["update"]),
    )


def _ordered(policy_plan: PolicyPlan) -> list[PolicyChange]:
    """The policy writes in plan order; in a rollback, risk-condition policies last (Graph may refuse
    them on a tenant whose P2 lapsed: that must not hold back the rest of the rollback)."""
    writes = list(policy_plan.diff.writes)
    if not policy_plan.lint.reduces_only:
        return writes
    return sorted(writes, key=lambda c: bool(_risky(c.desired.body)))


def _risky(body: PolicyBody) -> bool:
    conditions = body.get("conditions") or {}
    return bool(conditions.get("signInRiskLevels") or conditions.get("userRiskLevels"))


async def _write_location(
    change: LocationChange,
    *,
    api: PolicyApi,
    audit: AsyncAuditPort,
    actor: str,
    correlation_id: str,
    reason: str,
) -> tuple[str, str]:
    details: dict[str, Any] = {"displayName": change.name, "type": change.desired.odata_type}
    if change.kind == "create":
        answer = await api.create_named_location(change.desired.body)
        location_id = str(answer.get("id") or "")
        if not location_id:
            raise PermanentError(f"Graph created named location {change.name!r} but answered no id")
    else:
        location_id = str(change.location_id)
        # The whole desired body, with its @odata.type (Graph wants it in a named location PATCH).
        await api.update_named_location(location_id, dict(change.desired.body))
        details["fields"] = [{"path": fc.path, "old": fc.old, "new": fc.new} for fc in change.fields]
    await audit.append(
        AuditEntry(
            actor=actor,
            action=f"ca.namedLocation.{change.kind}",
            target=f"namedLocation/{location_id}",
            reason=reason,
            correlation_id=correlation_id,
            details=details,
        )
    )
    return change.name, location_id


async def _create(
    change: PolicyChange,
    *,
    api: PolicyApi,
    kv: AsyncKeyValuePort,
    audit: AsyncAuditPort,
    actor: str,
    correlation_id: str,
    reason: str,
    clock: Clock,
    location_ids: Mapping[str, str],
) -> tuple[str, str]:
    # Whatever the plan says, a new policy starts in report-only (docs/architecture.md, 'Report-only first').
    body = resolve_pending({**change.desired.body, "state": REPORT_ONLY}, location_ids)
    answer = await api.create_policy(body)
    policy_id = str(answer.get("id") or "")
    await record_report_only(kv, {**body, "id": policy_id}, correlation_id=correlation_id, now=clock())
    await audit.append(
        AuditEntry(
            actor=actor,
            action="ca.policy.create",
            target=f"conditionalAccessPolicy/{policy_id}",
            reason=reason,
            correlation_id=correlation_id,
            details={"displayName": change.name, "state": REPORT_ONLY},
        )
    )
    return change.name, policy_id


async def _update(
    change: PolicyChange,
    *,
    api: PolicyApi,
    kv: AsyncKeyValuePort,
    audit: AsyncAuditPort,
    actor: str,
    correlation_id: str,
    reason: str,
    clock: Clock,
    location_ids: Mapping[str, str],
) -> tuple[str, str]:
    policy_id = str(change.policy_id)
    patch = resolve_pending(patch_body(change), location_ids)
    if not change.desired.wave_driven:
        patch.pop("state", None)  # the live state is kept; only a wave promotion or rollback moves it
    await api.update_policy(policy_id, patch)
    if patch.get("state") == REPORT_ONLY:
        await record_report_only(
            kv, {**change.desired.body, "id": policy_id}, correlation_id=correlation_id, now=clock()
        )
    fields = [{"path": fc.path, "old": fc.old, "new": fc.new} for fc in change.fields]
    await audit.append(
        AuditEntry(
            actor=actor,
            action=f"ca.policy.{change.kind}",
            target=f"conditionalAccessPolicy/{policy_id}",
            reason=reason,
            correlation_id=correlation_id,
            details={"displayName": change.name, "fields": fields},
        )
    )
    return change.name, policy_id
