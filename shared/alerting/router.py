"""The alert router: every alert from the ``alerts`` queue to the receivers the plan's route tree names.

Alertmanager's model, with its state in Azure Tables (``wgstate``) so it survives restarts:

1. **Silenced** (a plan silence or one added with ``waveguard silence add``): audited, not delivered.
2. **Inhibited** (an ``inhibitRules`` source alert is firing with the same ``equal`` labels):
   audited, not delivered.
3. Recorded in ``alerts-active`` (key: digest of the alert key) as firing or resolved, then added to
   the group of each route it matches (``alert-groups``: route path, receiver, ``groupBy`` labels).
4. A new group is flushed ``groupWaitSeconds`` later (so alerts that come together go out together);
   a group already notified is flushed again no sooner than ``groupIntervalSeconds`` after its last
   notification, and while it keeps firing, every ``repeatIntervalSeconds``. Flushes are
   ``alert.flush`` messages on the same queue, delayed until due.
5. A flush delivers the group (firing and newly resolved alerts) through its receiver once per
   content (``once`` on ``alert-notify:<group>:<digest>:<repeat>``), records the notification, drops
   the resolved alerts, and deletes the group when nothing fires any more (the receiver was told:
   PagerDuty resolves, Teams and Slack get a "resolved" message).

A receiver that fails transiently raises ``RetryableError``: the flush message comes back (nothing
lost) and, after ``maxDequeueCount``, goes to poison, which pages through the other receivers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from shared.alerting.model import ALERT_ENVELOPE_TYPE, Alert
from shared.alerting.routing import (
    RouteMatch,
    group_key,
    group_labels,
    inhibiting,
    matching_routes,
    silencing,
)
from shared.alerting.silences import active_silences
from shared.config import AlertingConfig, Receiver
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError
from shared.keyed_locks import KeyedLocks
from shared.names import ALERTS
from shared.queues import Sender
from shared.state import AsyncStores, AuditEntry, Clock, iso, parse_iso, utc_now
from shared.state.errors import ConcurrencyError
from shared.state.once import once

__all__ = [
    "ACTIVE_NAMESPACE",
    "ACTOR",
    "FLUSH_TYPE",
    "GROUPS_NAMESPACE",
    "Deliver",
    "Notification",
    "RouterDeps",
    "alert_id",
    "flush_group",
    "route_alert",
]

log = logging.getLogger(__name__)

ACTOR: Final = "waveguard/alert-router"
FLUSH_TYPE: Final = "alert.flush"
GROUPS_NAMESPACE: Final = "alert-groups"
ACTIVE_NAMESPACE: Final = "alerts-active"
_NOTIFY_TTL: Final = timedelta(days=8)
_NOTIFY_CLAIM: Final = timedelta(minutes=2)
_UPDATE_ATTEMPTS: Final = 12
_EARLY_SLACK: Final = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Notification:
    """What one flush tells one receiver about one group."""

    group_id: str
    receiver: Receiver
    status: Literal["firing", "resolved"]
    group_labels: Mapping[str, str]
    alerts: list[dict[str, Any]]  # each: key, status, severity, summary, labels, startsAt, endsAt

    @property
    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "firing"]

    @property
    def severity(self) -> str:
        """The most severe severity among the firing alerts (or all, when resolved)."""
        order = ("critical", "high", "medium", "low", "info")
        pool = self.firing or self.alerts
        return min((str(a["severity"]) for a in pool), key=lambda s: order.index(s) if s in order else 9)

    @property
    def title(self) -> str:
        name = self.group_labels.get("alertname") or (
            self.alerts[0]["labels"].get("alertname") if self.alerts else ""
        )
        scope = ", ".join(f"{k}={v}" for k, v in self.group_labels.items() if k != "alertname" and v)
        head = (
            f"[{self.status.upper()}{':' + str(len(self.firing)) if self.firing else ''}] {name or 'alert'}"
        )
        return f"{head} ({scope})" if scope else head


Deliver = Callable[[Notification], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RouterDeps:
    """The plan's alerting section, the state stores, the queues, the clock and the delivery function."""

    alerting: AlertingConfig
    state: AsyncStores
    queues: Sender
    deliver: Deliver
    clock: Clock = utc_now


@dataclass(slots=True)
class RouteOutcome:
    """What ``route_alert`` did with one alert."""

    alert_key: str
    outcome: Literal["grouped", "silenced", "inhibited"]
    groups: list[str] = field(default_factory=list)
    reason: str | None = None


def alert_id(key: str) -> str:
    """The record id of an alert key in ``alerts-active``."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def route_alert(deps: RouterDeps, alert: Alert, *, correlation_id: str) -> RouteOutcome:
    """Silence, inhibit, record and group one alert; schedule its groups' flushes.

    Raises:
        RetryableError: storage failed (the message comes back; every step is repeatable).
    """
    now = deps.clock()
    labels = alert.routing_labels()
    silence = silencing(labels, await active_silences(deps.alerting, deps.state.kv, now), now)
    if silence is not None and alert.status == "firing":
        reason = f"silenced: {getattr(silence, 'comment', '')}".strip()
        await _audit(deps, "alert.silenced", alert.key, reason, correlation_id)
        return RouteOutcome(alert.key, "silenced", reason=reason)
    if alert.status == "firing":
        firing = [r["labels"] for r in await _active(deps) if r.get("status") == "firing"]
        rule = inhibiting(labels, firing, deps.alerting.inhibit_rules)
        if rule is not None:
            reason = "inhibited by " + ", ".join(str(m) for m in rule.source_matchers)
            await _audit(deps, "alert.inhibited", alert.key, reason, correlation_id)
            return RouteOutcome(alert.key, "inhibited", reason=reason)
    matches = matching_routes(deps.alerting.route, labels)
    groups = [group_key(m, labels) for m in matches]
    await _record_active(deps, alert, labels, groups, now)
    for match, gid in zip(matches, groups, strict=True):
        await _add_to_group(deps, match, gid, alert, labels, now)
    return RouteOutcome(alert.key, "grouped", groups)


async def _active(deps: RouterDeps) -> list[dict[str, Any]]:
    return [v for v in await deps.state.kv.values(ACTIVE_NAMESPACE) if isinstance(v, dict)]


async def _record_active(
    deps: RouterDeps, alert: Alert, labels: Mapping[str, str], groups: list[str], now: datetime
) -> None:
    record_id = alert_id(alert.key)
    stored = await deps.state.kv.get(ACTIVE_NAMESPACE, record_id)
    previous = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    since = previous.get("startsAt") if previous.get("status") == "firing" else iso(alert.occurred_at)
    await deps.state.kv.put(
        ACTIVE_NAMESPACE,
        record_id,
        {
            "id": record_id,
            "key": alert.key,
            "status": alert.status,
            "severity": alert.severity,
            "summary": alert.summary[:1000],
            "source": alert.source,
            "labels": dict(labels),
            "details": dict(alert.details),
            "startsAt": since,
            "endsAt": iso(now) if alert.status == "resolved" else None,
            "updatedAt": iso(now),
            "groups": groups,
            "ack": previous.get("ack"),
        },
    )


# One writer per group in this process (other processes are kept apart by ETags or ``once``).
_group_locks = KeyedLocks()


async def _add_to_group(
    deps: RouterDeps, match: RouteMatch, gid: str, alert: Alert, labels: Mapping[str, str], now: datetime
) -> None:
    async with _group_locks.of(gid):
        await _add_to_group_locked(deps, match, gid, alert, labels, now)


async def _add_to_group_locked(
    deps: RouterDeps, match: RouteMatch, gid: str, alert: Alert, labels: Mapping[str, str], now: datetime
) -> None:
    route = match.route
    for _ in range(_UPDATE_ATTEMPTS):
        stored = await deps.state.kv.get(GROUPS_NAMESPACE, gid)
        group: dict[str, Any] = dict(stored.value) if stored is not None else {}
        new = not group
        if new and alert.status == "resolved":
            return  # nothing was told about it: nothing to resolve
        if new:
            group = {
                "id": gid,
                "receiver": match.receiver,
                "path": match.path,
                "groupLabels": group_labels(route, labels),
                "createdAt": iso(now),
                "alerts": {},
                "notifications": 0,
                "groupWait": route.group_wait_seconds,
                "groupInterval": route.group_interval_seconds,
                "repeatInterval": route.repeat_interval_seconds,
            }
        alerts = dict(group["alerts"])
        alerts[alert_id(alert.key)] = {
            "key": alert.key,
            "status": alert.status,
            "severity": alert.severity,
            "summary": alert.summary[:1000],
            "labels": dict(labels),
            "startsAt": (alerts.get(alert_id(alert.key)) or {}).get("startsAt") or iso(alert.occurred_at),
            "endsAt": iso(now) if alert.status == "resolved" else None,
        }
        group["alerts"] = alerts
        due = _next_flush(group, now, new=new)
        scheduled = parse_iso(group.get("nextFlushAt"))
        reschedule = scheduled is None or scheduled <= now or due < scheduled
        if reschedule:
            group["nextFlushAt"] = iso(due)
        try:
            await deps.state.kv.put(
                GROUPS_NAMESPACE,
                gid,
                group,
                if_match=stored.etag if stored is not None else None,
                if_absent=new,
            )
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
            continue
        if reschedule:
            await _schedule(deps, gid, due, now)
        return
    raise ConcurrencyError(f"alert group {gid} kept changing; retry")


def _next_flush(group: Mapping[str, Any], now: datetime, *, new: bool) -> datetime:
    if new:
        return now + timedelta(seconds=int(group["groupWait"]))
    last = parse_iso(group.get("lastNotifiedAt"))
    if last is None:  # still within its group wait: the flush already scheduled stands
        return parse_iso(group.get("nextFlushAt")) or now
    return max(now, last + timedelta(seconds=int(group["groupInterval"])))


async def _schedule(deps: RouterDeps, gid: str, due: datetime, now: datetime) -> None:
    envelope = Envelope(
        type=FLUSH_TYPE,
        id=f"alert-flush-{gid}-{int(due.timestamp())}",
        payload={"group": gid, "due": iso(due)},
    )
    delay = max(0.0, (due - now).total_seconds())
    await deps.queues.send(ALERTS, envelope, delay=delay or None)


async def flush_group(deps: RouterDeps, gid: str, *, correlation_id: str) -> str:
    """Deliver the group if it is due and changed (or due a repeat); what happened.

    Raises:
        RetryableError: the receiver or storage failed (the flush comes back; nothing is lost).
    """
    now = deps.clock()
    stored = await deps.state.kv.get(GROUPS_NAMESPACE, gid)
    if stored is None:
        return "gone"
    group = dict(stored.value)
    due = parse_iso(group.get("nextFlushAt")) or now
    if now + _EARLY_SLACK < due:
        return "not-due"  # a newer flush message is scheduled for the real due time
    alerts: dict[str, dict[str, Any]] = dict(group["alerts"])
    digest = hashlib.sha256(
        json.dumps(sorted((a["key"], a["status"]) for a in alerts.values())).encode()
    ).hexdigest()[:16]
    firing = any(a["status"] == "firing" for a in alerts.values())
    last = parse_iso(group.get("lastNotifiedAt"))
    repeat = timedelta(seconds=int(group["repeatInterval"]))
    repeat_due = firing and last is not None and now + _EARLY_SLACK >= last + repeat
    if digest == group.get("notifiedDigest") and not repeat_due:
        return "unchanged"
    receiver = deps.alerting.receiver(str(group["receiver"]))
    notification = Notification(
        gid,
        receiver,
        "firing" if firing else "resolved",
        dict(group["groupLabels"]),
        sorted(alerts.values(), key=lambda a: (a["status"] != "firing", a["key"])),
    )
    repeat_index = int(group.get("notifications", 0)) if repeat_due else 0
    async with once(
        deps.state.idempotency,
        f"alert-notify:{gid}:{digest}:{repeat_index}",
        ttl=_NOTIFY_TTL,
        in_progress_expiry=_NOTIFY_CLAIM,
        busy_message=f"another worker is notifying alert group {gid}",
        correlation_id=correlation_id,
    ) as run:
        if not run.done:
            await deps.deliver(notification)
    await _after_notify(deps, gid, digest, now, correlation_id, notification)
    return "notified"


async def _after_notify(
    deps: RouterDeps, gid: str, digest: str, now: datetime, correlation_id: str, notification: Notification
) -> None:
    async with _group_locks.of(gid):
        await _after_notify_locked(deps, gid, digest, now, correlation_id, notification)


async def _after_notify_locked(
    deps: RouterDeps, gid: str, digest: str, now: datetime, correlation_id: str, notification: Notification
) -> None:
    for _ in range(_UPDATE_ATTEMPTS):
        stored = await deps.state.kv.get(GROUPS_NAMESPACE, gid)
        if stored is None:
            return
        group = dict(stored.value)
        told = {alert_id(a["key"]): a["status"] for a in notification.alerts}
        # drop what was told resolved (unless it fired again meanwhile)
        alerts = {
            k: a
            for k, a in group["alerts"].items()
            if not (told.get(k) == "resolved" and a["status"] == "resolved")
        }
        group.update(alerts=alerts, notifiedDigest=digest, lastNotifiedAt=iso(now))
        group["notifications"] = int(group.get("notifications", 0)) + 1
        still_firing = any(a["status"] == "firing" for a in alerts.values())
        try:
            if not alerts:
                await deps.state.kv.delete(GROUPS_NAMESPACE, gid, if_match=stored.etag)
            else:
                due = now + timedelta(seconds=int(group["repeatInterval"]))
                changed = any(told.get(k) != a["status"] for k, a in alerts.items())
                if changed:  # something arrived while we were delivering: next interval
                    due = now + timedelta(seconds=int(group["groupInterval"]))
                group["nextFlushAt"] = iso(due)
                await deps.state.kv.put(GROUPS_NAMESPACE, gid, group, if_match=stored.etag)
                if still_firing or changed:
                    await _schedule(deps, gid, due, now)
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
            continue
        details = {
            "receiver": notification.receiver.name,
            "status": notification.status,
            "alerts": len(notification.alerts),
        }
        await deps.state.audit.append(
            AuditEntry(
                ACTOR,
                "alert.notified",
                gid,
                notification.title[:300],
                correlation_id=correlation_id,
                details=details,
            )
        )
        for key, status in told.items():
            if status == "resolved" and key not in alerts:
                await _clear_active(deps, key)
        return
    raise ConcurrencyError(f"alert group {gid} kept changing; retry")


async def _clear_active(deps: RouterDeps, record_id: str) -> None:
    stored = await deps.state.kv.get(ACTIVE_NAMESPACE, record_id)
    if stored is not None and isinstance(stored.value, dict) and stored.value.get("status") == "resolved":
        await deps.state.kv.delete(ACTIVE_NAMESPACE, record_id, if_match=stored.etag)


async def _audit(deps: RouterDeps, action: str, target: str, reason: str, correlation_id: str) -> None:
    await deps.state.audit.append(
        AuditEntry(ACTOR, action, target[:200], reason[:500], correlation_id=correlation_id)
    )


def parse_flush(envelope: Envelope) -> str:
    """The group a flush message names.

    Raises:
        InvalidPayloadError: it names none.
    """
    gid = envelope.payload.get("group")
    if not isinstance(gid, str) or not gid:
        raise InvalidPayloadError.for_field("payload.group", "expected the alert group id")
    return gid


ROUTED_TYPES: Final = (ALERT_ENVELOPE_TYPE, FLUSH_TYPE)
