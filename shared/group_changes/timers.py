"""What the two group-change timers do: keep the subscriptions fresh, and the daily safety net.

- ``run_subscription_sync``: ``sync_subscriptions`` (at start and every few hours); a group whose
  subscription Graph refused is logged with Graph's reason and alerted on (``SubscriptionSyncFailed``,
  high), the others are unaffected; a sync that fails as a whole for a permanent reason (the
  exclusion group is gone, the plan names groups Graph refuses) pages ``SubscriptionSyncFailed``
  (critical): without subscriptions, group changes wait for the daily resync. With no
  ``subscriptions.notificationUrl`` in the plan it does nothing (no Graph call). While another
  writer holds the tenant's lock (an operator's ``waveguard subscriptions sync``, a lifecycle
  event's one group), the tick waits for it (up to ``BUSY_WAIT_SECONDS``), then syncs; still
  held then, the tick is skipped with a warning (the next tick does the work) rather than failed.
- ``enqueue_resync``: one ``graph.group.resync`` envelope per watched group on ``group-changes``
  (ids per day and group, so a timer that fires twice enqueues the same messages); the worker reads
  each group's delta exactly as for a notification, so drift a lost notification hid is found and
  repaired the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from shared.alerting import Alert, raise_alert
from shared.envelope import Envelope
from shared.errors import PermanentError
from shared.group_changes.subscriptions import (
    ACTOR,
    SubscriptionDeps,
    SubscriptionStatus,
    SyncBusyError,
    sync_subscriptions_waiting,
)
from shared.group_changes.watched import watched_groups
from shared.group_changes.worker import RESYNC_TYPE
from shared.names import GROUP_CHANGES
from shared.queues import Sender

__all__ = ["enqueue_resync", "run_subscription_sync"]

log = logging.getLogger(__name__)


# How long a tick waits for another writer of the subscriptions (a whole sync takes seconds).
BUSY_WAIT_SECONDS: Final = 60.0


async def run_subscription_sync(
    deps: SubscriptionDeps, queues: Sender, *, correlation_id: str, busy_wait: float = BUSY_WAIT_SECONDS
) -> list[SubscriptionStatus]:
    """Sync the subscriptions (nothing when the plan sets no notification URL); a group whose
    subscription failed raises a high ``SubscriptionSyncFailed`` alert (its changes go unnoticed
    until the daily resync).

    Raises:
        SafetyViolationError: the break-glass exclusion group does not exist.
        RetryableError: Graph or storage failed.
    """
    if deps.plan.subscriptions.notification_url is None:
        log.info("subscriptions.notificationUrl is not set: no Graph subscriptions are kept")
        return []
    try:
        results = await sync_subscriptions_waiting(deps, correlation_id=correlation_id, wait=busy_wait)
    except SyncBusyError:
        log.warning(
            "another subscription writer held the lock for %g s: this tick is skipped, the next one syncs",
            busy_wait,
            extra={"correlation_id": correlation_id},
        )
        return []
    except PermanentError as exc:
        await _page(
            deps, queues, "SubscriptionSyncFailed", f"the subscription sync failed: {exc}", correlation_id
        )
        raise
    for status in results:
        level = logging.WARNING if status.action == "failed" else logging.INFO
        log.log(
            level,
            "subscription %s",
            status.action,
            extra={"group_id": status.group_id, "detail": status.detail, "correlation_id": correlation_id},
        )
    failed = [s for s in results if s.action == "failed"]
    if failed:
        summary = "; ".join(f"{s.display_name or s.group_id}: {s.detail}" for s in failed[:5])
        alert = Alert(
            key="subscriptions:failed",
            severity="high",
            summary=(
                f"SubscriptionSyncFailed: {len(failed)} watched group(s) have no live Graph "
                f"subscription: {summary}"
            ),
            source=ACTOR,
            labels={"alertname": "SubscriptionSyncFailed", "severity": "high"},
            details={"groups": [s.group_id for s in failed], "correlationId": correlation_id},
            occurred_at=deps.clock(),
        )
        await raise_alert(queues, alert)
    return results


async def enqueue_resync(deps: SubscriptionDeps, queues: Sender, *, now: datetime) -> int:
    """Queue a look at every watched group; how many were queued.

    Raises:
        SafetyViolationError: the break-glass exclusion group does not exist.
        RetryableError: Graph or the queue failed (a retry enqueues the same ids).
    """
    try:
        watched = await watched_groups(deps.graph, deps.plan, deps.state.kv)
    except PermanentError as exc:
        await _page(
            deps, queues, "GroupResyncFailed", f"the daily group resync failed: {exc}", f"resync-{now:%Y%m%d}"
        )
        raise
    day = now.strftime("%Y%m%d")
    for group in watched.groups:
        envelope = Envelope(
            type=RESYNC_TYPE,
            id=f"group-resync-{day}-{group.group_id}",
            payload={"entries": [{"resource": f"groups/{group.group_id}"}]},
        )
        await queues.send(GROUP_CHANGES, envelope)
    log.info("group resync queued", extra={"groups": len(watched.groups), "missing": list(watched.missing)})
    return len(watched.groups)


async def _page(
    deps: SubscriptionDeps, queues: Sender, alertname: str, summary: str, correlation_id: str
) -> None:
    alert = Alert(
        key=f"group-changes:{alertname}",
        severity="critical",
        summary=f"{alertname}: {summary}"[:1000],
        source=ACTOR,
        labels={"alertname": alertname, "severity": "critical"},
        details={"correlationId": correlation_id},
        occurred_at=deps.clock(),
    )
    await raise_alert(queues, alert)
