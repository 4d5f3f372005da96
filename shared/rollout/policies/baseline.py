"""One call for workers (e.g. a wave promotion): bring the tenant's CA policies to the plan.

The CLI does the same in steps (plan, confirm, apply); a worker has nobody to ask, so the lint is
its only gate: a blocking finding raises and nothing is written.

A block or risk pair holds an enforced wave in its report-only twin until the wave's soak is due
(soak.py). Nothing else would sync the baseline then, so after an apply that leaves a soak running,
``schedule_soak_resync`` sets the rollout timer's "baseline must be synced" marker (``wave-sync`` /
``baseline``) with ``soakDue``; the rollout timer leaves a marker set only for a soak alone until
``soakDue`` (no sync, nothing logged), and ``sync_baseline`` itself, when called for such a marker
before it is due, answers from the store alone (no Graph read) and keeps the marker set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.config import RolloutPlan
from shared.errors import PermanentError
from shared.rollout.policies.apply import (
    ApplyResult,
    PolicyPlan,
    apply_lock,
    apply_policy_plan,
    build_policy_plan,
)
from shared.state import AsyncKeyValuePort, AsyncStores, Clock, ConcurrencyError, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["SOAK_REASON", "schedule_soak_resync", "sync_baseline"]

# The marker's reason when only a running soak asks for the sync.
SOAK_REASON: Final = "policy soak: a block or risk pair takes an enforced wave once its soak is due"
log = logging.getLogger(__name__)


def _marker_key() -> tuple[str, str]:
    # The rollout timer's marker (imported late: the lifecycle imports this package).
    from shared.rollout.lifecycle.evaluate import SYNC_KEY, SYNC_NAMESPACE

    return SYNC_NAMESPACE, SYNC_KEY


async def schedule_soak_resync(
    kv: AsyncKeyValuePort, policy_plan: PolicyPlan, *, synced_reason: str | None = None
) -> datetime | None:
    """After an apply: while a pair still holds an enforced wave in its twin, ask the rollout timer to
    sync again (marker ``pending`` with ``soakDue``, the earliest soak's end); returns that time.

    ``synced_reason`` is the reason of the marker this sync covered (None from the CLI): a marker
    set since then for another reason is left as it is (its sync comes first and schedules again).

    Raises:
        RetryableError: the store could not be reached.
    """
    if not policy_plan.soaking:
        return None
    due = min(soak.due for soak in policy_plan.soaking)
    namespace, key = _marker_key()
    stored = await kv.get(namespace, key)
    value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    if value.get("pending") and value.get("reason") not in (synced_reason, SOAK_REASON):
        return due
    marker = {"pending": True, "reason": SOAK_REASON, "soakDue": due.isoformat()}
    with contextlib.suppress(ConcurrencyError):  # someone marked meanwhile: their sync schedules again
        if stored is None:
            await kv.put(namespace, key, marker, if_absent=True)
        else:
            await kv.put(namespace, key, marker, if_match=stored.etag)
    return due


async def _soak_not_due(kv: AsyncKeyValuePort, reason: str, now: datetime) -> bool:
    """Whether this sync was asked for only by a soak that is not due: then the marker is written
    again (so the timer's clear misses and it stays set) and nothing is read from Graph."""
    if reason != SOAK_REASON:
        return False
    namespace, key = _marker_key()
    stored = await kv.get(namespace, key)
    value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    if stored is None or value.get("reason") != SOAK_REASON or not value.get("soakDue"):
        return False
    try:
        due = datetime.fromisoformat(str(value["soakDue"]))
    except ValueError:
        return False
    if due <= now:
        return False
    with contextlib.suppress(ConcurrencyError):
        await kv.put(namespace, key, dict(value), if_match=stored.etag)
    log.info("baseline sync: the policy soak is due at %s; nothing to sync yet", due.isoformat())
    return True


async def sync_baseline(
    client: GraphServiceClient,
    plan: RolloutPlan,
    stores: AsyncStores,
    *,
    actor: str,
    correlation_id: str,
    reason: str,
    clock: Clock = utc_now,
) -> ApplyResult:
    """Resolve, diff, lint and apply the baseline under the apply lock; returns what was written.
    A sync asked for only by a policy soak that is not due yet reads nothing and writes nothing.

    Raises:
        SafetyViolationError: the lint failed (rule ``policy-lint``; e.g. WG-CA-08, risk conditions
            on a tenant without Entra ID P2), or an edit tightens enforcement for users already
            enforced (rule ``enforced-change``: an operator accepts it with ``policies apply
            --accept-enforced-change``); nothing was written.
        PermanentError: the sync would create or enable a policy and the tenant cannot take CA
            policies (security defaults on, no Entra ID P1); a rollback is never refused so.
        RetryableError: another apply holds the lock, or Graph / storage failed transiently.
        PermanentError: Graph refused a read or a write.
    """
    from shared.graph.client import get_json
    from shared.graph.conditional_access import ConditionalAccessApi
    from shared.rollout.policies.preflight import tenant_preflight
    from shared.rollout.policies.tenant import GraphReferenceLookup, resolve_tenant

    if await _soak_not_due(stores.kv, reason, clock()):
        return ApplyResult(notes=("policy soak not due yet",))
    api = ConditionalAccessApi(client)

    def read(path: str) -> Awaitable[dict[str, Any] | None]:
        return get_json(client, path)

    async with apply_lock(stores.idempotency):
        tenant = await resolve_tenant(client, plan)
        # Risk conditions need Entra ID P2: the lint (WG-CA-08) needs the licences to judge them.
        preflight = await tenant_preflight(read) if plan.policies.needs_p2 else None
        policy_plan = await build_policy_plan(
            plan,
            api=api,
            lookup=GraphReferenceLookup(client),
            tenant=tenant,
            kv=stores.kv,
            licence_p2=preflight.licence_p2 if preflight is not None else None,
            licence_unreadable=preflight.licence_unreadable if preflight is not None else None,
            clock=clock,
        )
        if _creates_or_enables(policy_plan):
            # Only a sync that adds enforcement is checked: a rollback always goes through.
            preflight = preflight or await tenant_preflight(read)
            if preflight.blocking:
                what = "; ".join(f"{f.detail} (fix: {f.fix})" for f in preflight.blocking)
                raise PermanentError(
                    f"the tenant cannot take Conditional Access policies: {what}", reason=reason
                )
        result = await apply_policy_plan(
            policy_plan,
            api=api,
            kv=stores.kv,
            audit=stores.audit,
            actor=actor,
            correlation_id=correlation_id,
            reason=reason,
            clock=clock,
        )
        await schedule_soak_resync(stores.kv, policy_plan, synced_reason=reason)
        return result


def _creates_or_enables(policy_plan: PolicyPlan) -> bool:
    """Whether applying the plan creates a policy or named location, or enables a policy that is not
    enabled now."""
    if any(change.kind == "create" for change in policy_plan.locations.writes):
        return True
    for change in policy_plan.diff.writes:
        if change.kind == "create":
            return True
        live_state = (change.live or {}).get("state")
        if change.desired.state == "enabled" and live_state != "enabled":
            return True
    return False
