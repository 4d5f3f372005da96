"""One call for workers (e.g. a wave promotion): bring the tenant's CA policies to the plan.

The CLI does the same in steps (plan, confirm, apply); a worker has nobody to ask, so the lint is
its only gate: a blocking finding raises and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from shared.config import RolloutPlan
from shared.errors import PermanentError
from shared.rollout.policies.apply import (
    ApplyResult,
    PolicyPlan,
    apply_lock,
    apply_policy_plan,
    build_policy_plan,
)
from shared.state import AsyncStores

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["sync_baseline"]


async def sync_baseline(
    client: GraphServiceClient,
    plan: RolloutPlan,
    stores: AsyncStores,
    *,
    actor: str,
    correlation_id: str,
    reason: str,
) -> ApplyResult:
    """Resolve, diff, lint and apply the baseline under the apply lock; returns what was written.

    Raises:
        SafetyViolationError: the lint failed (rule ``policy-lint``; e.g. WG-CA-08, risk conditions
            on a tenant without Entra ID P2); nothing was written.
        PermanentError: the sync would create or enable a policy and the tenant cannot take CA
            policies (security defaults on, no Entra ID P1); a rollback is never refused so.
        RetryableError: another apply holds the lock, or Graph / storage failed transiently.
        PermanentError: Graph refused a read or a write.
    """
    from shared.graph.client import get_json
    from shared.graph.conditional_access import ConditionalAccessApi
    from shared.rollout.policies.preflight import tenant_preflight
    from shared.rollout.policies.tenant import GraphReferenceLookup, resolve_tenant

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
        )
        if _creates_or_enables(policy_plan):
            # Only a sync that adds enforcement is checked: a rollback always goes through.
            preflight = preflight or await tenant_preflight(read)
            if preflight.blocking:
                what = "; ".join(f"{f.detail} (fix: {f.fix})" for f in preflight.blocking)
                raise PermanentError(
                    f"the tenant cannot take Conditional Access policies: {what}", reason=reason
                )
        return await apply_policy_plan(
            policy_plan,
            api=api,
            kv=stores.kv,
            audit=stores.audit,
            actor=actor,
            correlation_id=correlation_id,
            reason=reason,
        )


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
