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
5. A flush (``shared.alerting.flush``) delivers the group through its receiver, within the
   receiver's rate limit, folding a backlog into one digest during a storm.

An alert labelled ``failedReceiver`` (``AlertDeliveryFailed``, raised when a receiver keeps
failing) is never routed to that receiver: it goes to the tree's other matches, or to the first
other receiver of the plan, so operations hear of an outage through a receiver that works.
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
from shared.state import AsyncStores, AuditEntry, Clock, Versioned, iso, parse_iso, utc_now
from shared.state.errors import ConcurrencyError

__all__ = [
    "ACTIVE_NAMESPACE",
    "ACTOR",
    "FLUSH_TYPE",
    "GROUPS_NAMESPACE",
    "GROUP_LOCKS",
    "Deliver",
    "Notification",
    "RouterDeps",
    "alert_id",
    "route_alert",
    "schedule_flush",
]

log = logging.getLogger(__name__)

ACTOR: Final = "waveguard/alert-router"
FLUSH_TYPE: Final = "alert.flush"
GROUPS_NAMESPACE: Final = "alert-groups"
ACTIVE_NAMESPACE: Final = "alerts-active"
UPDATE_ATTEMPTS: Final = 12
# A group record holds at most this many alerts (a table value holds 32K characters); beyond it,
# alerts go to the group's next part (``<group>.1`` ...), told as a group of its own.
MAX_GROUP_ALERTS: Final = 100
_GROUP_BYTES: Final = 24_000  # and never more than this much JSON (a table value holds 30,000)
MAX_PARTS: Final = 200


@dataclass(frozen=True, slots=True)
class Notification:
    """What one flush tells one receiver about one group."""

    group_id: str
    receiver: Receiver
    status: Literal["firing", "resolved"]
    group_labels: Mapping[str, str]
    alerts: list[dict[str, Any]]  # each: key, status, severity, summary, labels, startsAt, endsAt
    digest_of: int = 0  # a storm digest: how many groups it folds (0: one group)
    digest_groups: tuple[Mapping[str, Any], ...] = ()  # each folded group: id, groupLabels, counts
    generation: str = ""  # when the group was created: its notifications are claimed per generation

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
        if self.digest_of:
            return (
                f"[{self.status.upper()}:{len(self.firing)}] alert storm digest: "
                f"{self.digest_of} groups for {self.receiver.name}"
            )
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
    outcome: Literal["grouped", "silenced", "inhibited", "stale"]
    groups: list[str] = field(default_factory=list)
    reason: str | None = None


def alert_id(key: str) -> str:
    """The record id of an alert key in ``alerts-active``."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def route_alert(deps: RouterDeps, alert: Alert, *, correlation_id: str) -> RouteOutcome:
    """Silence, inhibit, record and group one alert; schedule its groups' flushes.

    Messages about one alert may arrive out of order (a Fired that Azure Monitor retried after its
    Resolved): what is older than the recorded state of the alert is dropped as stale.

    Raises:
        RetryableError: storage failed (the message comes back; every step is repeatable).
    """
    async with _ALERT_LOCKS.of(alert.key):
        return await _route_locked(deps, alert, correlation_id)


async def _route_locked(deps: RouterDeps, alert: Alert, correlation_id: str) -> RouteOutcome:
    now = deps.clock()
    labels = alert.routing_labels()
    # the alert's record, read once: the stale check, the groups a resolution goes to, and the
    # first attempt of the record's update all use it
    record = await deps.state.kv.get(ACTIVE_NAMESPACE, alert_id(alert.key))
    if _stale(record, alert):
        await _audit(deps, "alert.stale", alert.key, "older than what is already recorded", correlation_id)
        return RouteOutcome(alert.key, "stale", reason="older than the recorded state")
    silence = silencing(labels, await active_silences(deps.alerting, deps.state.kv, now), now)
    if silence is not None and alert.status == "firing":
        reason = f"silenced: {getattr(silence, 'comment', '')}".strip()
        await _audit(deps, "alert.silenced", alert.key, reason, correlation_id)
        return RouteOutcome(alert.key, "silenced", reason=reason)
    rules = deps.alerting.inhibit_rules
    if alert.status == "firing" and any(all(m.matches(labels) for m in r.target_matchers) for r in rules):
        firing = [dict(r.get("labels") or {}) for r in await _active(deps) if r.get("status") == "firing"]
        rule = inhibiting(labels, firing, rules)
        if rule is not None:
            reason = "inhibited by " + ", ".join(str(m) for m in rule.source_matchers)
            await _audit(deps, "alert.inhibited", alert.key, reason, correlation_id)
            return RouteOutcome(alert.key, "inhibited", reason=reason)
    matches = _avoiding(
        deps.alerting, matching_routes(deps.alerting.route, labels), labels.get("failedReceiver")
    )
    groups = [group_key(m, labels) for m in matches]
    targets: list[tuple[RouteMatch | None, str]] = list(zip(matches, groups, strict=True))
    if alert.status == "resolved":
        # A resolution goes to the groups the firing alert is in, whatever its own labels say
        # (a sender may resolve with another severity): that is where the receivers were told.
        told = _recorded_groups(record)
        # (a resolution of an alert not seen yet is still recorded: its firing may come after it,
        # out of order, and must then be recognised as older)
        if told:
            targets = [(next((m for m, g in targets if g == gid), None), gid) for gid in told]
            groups = told
    # the record first: a group flushed at once reads the alert's summary and labels from it
    written = await _record_active(deps, alert, labels, groups, now, record)
    if written is None:
        await _audit(deps, "alert.stale", alert.key, "older than what is already recorded", correlation_id)
        return RouteOutcome(alert.key, "stale", reason="older than the recorded state")
    placed = [await _add_to_group(deps, match, gid, alert, labels, now, written) for match, gid in targets]
    actual = [gid for gid in placed if gid is not None] or groups
    if actual != groups:  # a full group sent it to a further part
        await _set_record_groups(deps, alert, actual)
    return RouteOutcome(alert.key, "grouped", actual)


async def _set_record_groups(deps: RouterDeps, alert: Alert, groups: list[str]) -> None:
    record_id = alert_id(alert.key)
    for _ in range(UPDATE_ATTEMPTS):
        stored = await deps.state.kv.get(ACTIVE_NAMESPACE, record_id)
        if stored is None or not isinstance(stored.value, dict):
            return
        try:
            await deps.state.kv.put(
                ACTIVE_NAMESPACE, record_id, {**stored.value, "groups": groups}, if_match=stored.etag
            )
            return
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
    raise ConcurrencyError(f"alert record {record_id} kept changing; retry")


def _recorded_groups(stored: Versioned | None) -> list[str]:
    value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    groups = value.get("groups") if value.get("status") == "firing" else None
    return [str(g) for g in groups] if isinstance(groups, list) else []


def _stale(stored: Versioned | None, alert: Alert) -> bool:
    if stored is None or not isinstance(stored.value, dict):
        return False
    recorded = parse_iso(stored.value.get("occurredAt"))
    return recorded is not None and alert.occurred_at < recorded


def _avoiding(alerting: AlertingConfig, matches: list[RouteMatch], failed: str | None) -> list[RouteMatch]:
    """The matches minus the failing receiver's; else the first other receiver of the plan."""
    if not failed:
        return matches
    kept = [m for m in matches if m.receiver != failed]
    if kept:
        return kept
    other = next((r.name for r in alerting.receivers if r.name != failed), None)
    if other is None:
        log.error("receiver %s is failing and the plan has no other receiver to say so", failed)
        return matches
    return [RouteMatch("fallback", alerting.route.model_copy(update={"receiver": other, "routes": []}))]


async def _active(deps: RouterDeps) -> list[dict[str, Any]]:
    return [v for v in await deps.state.kv.values(ACTIVE_NAMESPACE) if isinstance(v, dict)]


async def _record_active(
    deps: RouterDeps,
    alert: Alert,
    labels: Mapping[str, str],
    groups: list[str],
    now: datetime,
    read: Versioned | None,
) -> dict[str, Any] | None:
    """Write the alert's ``alerts-active`` record (ETag-checked: an ``ack`` written meanwhile is kept),
    first over ``read``; the record written, or None when it already holds a newer state of the alert."""
    record_id = alert_id(alert.key)
    for attempt in range(UPDATE_ATTEMPTS):
        stored = read if attempt == 0 else await deps.state.kv.get(ACTIVE_NAMESPACE, record_id)
        previous = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        recorded = parse_iso(previous.get("occurredAt"))
        if recorded is not None and alert.occurred_at < recorded:
            return None
        since = previous.get("startsAt") if previous.get("status") == "firing" else iso(alert.occurred_at)
        record = {
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
            "occurredAt": iso(alert.occurred_at),
            "groups": groups,
            "ack": previous.get("ack") if alert.status == "firing" else None,
        }
        try:
            await deps.state.kv.put(
                ACTIVE_NAMESPACE,
                record_id,
                record,
                if_match=stored.etag if stored is not None else None,
                if_absent=stored is None,
            )
            return record
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
    raise ConcurrencyError(f"alert record {record_id} kept changing; retry")


# One routing per alert key at a time in this process (other processes: ETags and the stale check).
_ALERT_LOCKS = KeyedLocks()
# One writer per group in this process (other processes are kept apart by ETags or ``once``).
GROUP_LOCKS = KeyedLocks()


async def _add_to_group(
    deps: RouterDeps,
    match: RouteMatch | None,
    gid: str,
    alert: Alert,
    labels: Mapping[str, str],
    now: datetime,
    record: dict[str, Any],
) -> str | None:
    """Put the alert in group ``gid``, or the first of its parts (``gid.1``, ``gid.2`` ...) with room;
    the id of the group it is in (None: a resolution of something never told)."""
    for part in range(MAX_PARTS):
        part_id = gid if part == 0 else f"{gid}.{part}"
        async with GROUP_LOCKS.of(part_id):
            placed, written = await _add_to_group_locked(deps, match, part_id, alert, labels, now)
        if placed == "due":
            from shared.alerting.flush import flush_group  # (flush builds on this module)

            # what was just written goes along: the flush reads neither again
            await flush_group(
                deps,
                part_id,
                correlation_id=f"route:{alert.key}"[:200],
                known=written,
                records={alert_id(alert.key): record},
            )
        if placed != "full":
            return part_id if placed in ("placed", "due") else None
    raise ConcurrencyError(f"alert group {gid} has {MAX_PARTS} full parts; retry later")


async def _add_to_group_locked(
    deps: RouterDeps,
    match: RouteMatch | None,
    gid: str,
    alert: Alert,
    labels: Mapping[str, str],
    now: datetime,
) -> tuple[Literal["placed", "due", "full", "skipped"], Versioned | None]:
    """What became of the alert, and the group as written."""
    for _ in range(UPDATE_ATTEMPTS):
        stored = await deps.state.kv.get(GROUPS_NAMESPACE, gid)
        group: dict[str, Any] = dict(stored.value) if stored is not None else {}
        new = not group
        if new and (alert.status == "resolved" or match is None):
            return "skipped", None  # nothing was told about it: nothing to resolve
        if new and match is not None:
            route = match.route
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
        entry = alerts.get(alert_id(alert.key))
        if entry is None and (len(alerts) >= MAX_GROUP_ALERTS or len(json.dumps(group)) > _GROUP_BYTES):
            return "full", None
        entry = entry or {}
        told_at = parse_iso(entry.get("occurredAt"))
        if told_at is not None and alert.occurred_at < told_at:
            return "placed", None  # a newer state of this alert is already in the group
        # compact (keyed by the record id): the key, summary and labels live in the alert's own
        # record (alerts-active), read when the group is told
        alerts[alert_id(alert.key)] = {
            "status": alert.status,
            "severity": alert.severity,
            "startsAt": entry.get("startsAt") or iso(alert.occurred_at),
            "endsAt": iso(now) if alert.status == "resolved" else None,
            "occurredAt": iso(alert.occurred_at),
        }
        group["alerts"] = alerts
        due = _next_flush(group, now, new=new)
        scheduled = parse_iso(group.get("nextFlushAt"))
        reschedule = scheduled is None or scheduled <= now or due < scheduled
        if reschedule:
            group["nextFlushAt"] = iso(due)
        if reschedule and due > now:
            # the message before the record: a stored nextFlushAt always has a message coming
            # (dying in between leaves a spare message, which finds nothing to do)
            await schedule_flush(deps, gid, due, now)
        try:
            etag = await deps.state.kv.put(
                GROUPS_NAMESPACE,
                gid,
                group,
                if_match=stored.etag if stored is not None else None,
                if_absent=new,
            )
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
            continue
        if reschedule and due <= now:
            return "due", Versioned(group, etag)  # no group wait: the caller flushes it at once
        return "placed", None
    raise ConcurrencyError(f"alert group {gid} kept changing; retry")


def _next_flush(group: Mapping[str, Any], now: datetime, *, new: bool) -> datetime:
    if new:
        return now + timedelta(seconds=int(group["groupWait"]))
    last = parse_iso(group.get("lastNotifiedAt"))
    if last is None:  # still within its group wait: the flush already scheduled stands
        return parse_iso(group.get("nextFlushAt")) or now
    return max(now, last + timedelta(seconds=int(group["groupInterval"])))


async def schedule_flush(deps: RouterDeps, gid: str, due: datetime, now: datetime) -> None:
    """An ``alert.flush`` message for ``gid``, invisible until ``due`` (one id per group and second)."""
    envelope = Envelope(
        type=FLUSH_TYPE,
        id=f"alert-flush-{gid}-{int(due.timestamp())}",
        payload={"group": gid, "due": iso(due)},
    )
    delay = max(0.0, (due - now).total_seconds())
    await deps.queues.send(ALERTS, envelope, delay=delay or None)


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
