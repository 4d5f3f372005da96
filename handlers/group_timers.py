"""The group-change timers: Graph subscriptions kept fresh (at start and every few hours), and the
daily full look at every watched group."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.services import ServicesProvider

# NCRONTAB from app settings (infra and local.settings.json: every 6 hours; 02:30 every day).
SUBSCRIPTION_SCHEDULE = "%WAVEGUARD_SUBSCRIPTION_SCHEDULE%"
RESYNC_SCHEDULE = "%WAVEGUARD_GROUP_RESYNC_SCHEDULE%"


def blueprint(services: ServicesProvider) -> func.Blueprint:
    """`subscription_timer` and `group_resync_timer` over ``services``."""
    bp = func.Blueprint()

    @bp.timer_trigger(arg_name="timer", schedule=SUBSCRIPTION_SCHEDULE, run_on_startup=True)
    async def subscription_timer(timer: func.TimerRequest) -> None:
        """Create, renew and drop Graph subscriptions so each watched group has one."""
        from shared.group_changes.subscriptions import SubscriptionDeps
        from shared.group_changes.timers import run_subscription_sync

        ready = await services.aget(what="the subscription timer")
        deps = SubscriptionDeps(ready.plan, ready.graph(), ready.state, ready.clock)
        await run_subscription_sync(deps, ready.queues, correlation_id=f"subscriptions-{uuid.uuid4().hex}")

    @bp.timer_trigger(arg_name="timer", schedule=RESYNC_SCHEDULE, run_on_startup=False)
    async def group_resync_timer(timer: func.TimerRequest) -> None:
        """Queue a look at every watched group (the safety net for lost notifications)."""
        from shared.group_changes.subscriptions import SubscriptionDeps
        from shared.group_changes.timers import enqueue_resync

        ready = await services.aget(what="the group resync timer")
        deps = SubscriptionDeps(ready.plan, ready.graph(), ready.state, ready.clock)
        await enqueue_resync(deps, ready.queues, now=ready.clock())

    return bp
