"""The production dependencies of the lifecycle: Graph evidence, the CA baseline sync, mail, state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.rollout.lifecycle.evaluate import GroupEnsurer, LifecycleDeps, MembershipStart
from shared.rollout.lifecycle.graph_evidence import GraphEvidence
from shared.rollout.lifecycle.nudges import GraphNudgeMail

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config import RolloutPlan, Settings
    from shared.onboarding import Deps
    from shared.state import StateStores

__all__ = ["build_lifecycle_deps", "membership_sync_for", "membership_sync_unavailable", "wave_group_ensurer"]

log = logging.getLogger(__name__)


async def membership_sync_unavailable(wave: str, *, correlation_id: str) -> None:
    """The membership port until the membership sync (``wave-work``) is deployed: say so, do nothing."""
    log.warning(
        "membership sync is not available; the wave group keeps its current members",
        extra={"wave": wave, "correlation_id": correlation_id},
    )


def membership_sync_for(settings: Settings) -> MembershipStart:
    """The membership port in production: ``start_wave_sync`` enqueues the wave's ``wave-work`` chunks."""

    async def start(wave: str, *, correlation_id: str) -> object:
        from shared.rollout.membership import build_sync_deps, start_wave_sync

        return await start_wave_sync(build_sync_deps(settings), wave, correlation_id=correlation_id)

    return start


def wave_group_ensurer(settings: Settings) -> GroupEnsurer:
    """Find or create the wave's target group, race-safe (the onboarding's ``ensure_wave_group``)."""
    built: list[Deps] = []

    async def ensure(wave: str, *, correlation_id: str) -> str:
        from shared.onboarding import build_deps
        from shared.onboarding.wave_group import ensure_wave_group

        if not built:
            built.append(build_deps(settings))
        return await ensure_wave_group(built[0].plan.wave(wave), built[0], correlation_id)

    return ensure


def build_lifecycle_deps(
    settings: Settings, *, client: GraphServiceClient | None = None, stores: StateStores | None = None,
    plan: RolloutPlan | None = None, start_membership: MembershipStart = membership_sync_unavailable,
    clock: Callable[[], datetime] | None = None, actor: str = "wave-timer",
) -> LifecycleDeps:  # fmt: skip
    """Everything ``evaluate_waves`` needs for this environment (Graph, Table state, the plan).

    Raises:
        ConfigError: the settings or the plan are invalid.
    """
    from shared.config import load_plan_for
    from shared.graph import build_graph_client
    from shared.rollout.policies import sync_baseline
    from shared.state import build_state

    plan = plan or load_plan_for(settings)
    graph = client or build_graph_client(settings)
    state = stores or build_state(settings)

    async def sync_policies(*, reason: str, correlation_id: str) -> object:
        return await sync_baseline(
            graph, plan, state, actor=actor, correlation_id=correlation_id, reason=reason
        )

    return LifecycleDeps(
        plan=plan, stores=state, evidence=GraphEvidence(graph, plan), sync_policies=sync_policies,
        start_membership=start_membership, clock=clock or (lambda: datetime.now(UTC)),
        nudge_mail=GraphNudgeMail(graph, plan.new_hires.delivery.sender_mailbox),
        ensure_group=wave_group_ensurer(settings),
    )  # fmt: skip
