"""A group's flush: deliver it within its receiver's rate limit, fold storms into digests, and never
lose an alert to a receiver that is down.

1. **Due and changed?** A flush message early for the group's ``nextFlushAt`` does nothing (a newer
   one is scheduled); a group whose content (alert keys, statuses, severities) was already told and
   whose repeat interval has not passed (or whose firing alerts are all acknowledged with
   ``waveguard alerts ack``) does nothing.
2. **Rate limit.** The receiver's window (``rate_limit.take_slot``) must have room. If not, the
   group joins the receiver's backlog (``alert-backlog/<receiver>``, up to 600 groups) and its flush
   is rescheduled for when a slot frees.
3. **Digest.** A flush that gets a slot takes the receiver's backlog with it: one notification for
   its group alone, or one storm digest for every waiting group (``digest_of``), each of which is
   then marked told. So a storm reaches a receiver as a few digests, never above its rate limit.
4. **Deliver once** per content (``once`` on ``alert-notify:<group>:<digest>:<repeat>``, or on the
   digest's groups), then record it: drop what was told resolved, delete the group when nothing
   fires any more, schedule the repeat.
5. **A receiver that fails** (unreachable, 429, 5xx, or a refusal) does not fail the message: the
   group counts the failure and its flush is rescheduled with back-off (15 s doubling to 15 min),
   so the alert waits on the queue however long the outage lasts. On the third failure in a row,
   ``AlertDeliveryFailed`` (critical, ``failedReceiver=<name>``) is raised, which the router sends
   through another receiver; the first delivery that works resolves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerting.model import Alert, raise_alert
from shared.alerting.rate_limit import IN_FLIGHT_SECONDS, settle_slot, take_slot
from shared.alerting.router import (
    ACTIVE_NAMESPACE,
    ACTOR,
    GROUP_LOCKS,
    GROUPS_NAMESPACE,
    UPDATE_ATTEMPTS,
    Notification,
    RouterDeps,
    alert_id,
    schedule_flush,
)
from shared.errors import BusyError, PermanentError, RetryableError
from shared.keyed_locks import KeyedLocks
from shared.state import AuditEntry, Versioned, iso, parse_iso
from shared.state.errors import ConcurrencyError
from shared.state.once import once

__all__ = ["BACKLOG_NAMESPACE", "FAILURES_BEFORE_ALERT", "flush_group"]

log = logging.getLogger(__name__)

BACKLOG_NAMESPACE: Final = "alert-backlog"
FAILURES_BEFORE_ALERT: Final = 3
_BACKLOG_CAP: Final = 600  # group ids (32 characters) per backlog record: well inside 32K
_DIGEST_ALERTS: Final = 100
_NOTIFY_TTL: Final = timedelta(days=8)
_NOTIFY_CLAIM: Final = timedelta(minutes=2)
_EARLY_SLACK: Final = timedelta(seconds=1)
_FALLBACK_SECONDS: Final = 15.0
_BACKOFF_FIRST: Final = 15.0
_BACKOFF_MAX: Final = 900.0


@dataclass(frozen=True, slots=True)
class _Pending:
    """A group ready to be told: its notification, content digest and repeat index."""

    gid: str
    notification: Notification
    digest: str
    repeat: int
    failures: int
    stored: Versioned  # the group as read: the first attempt of its update after the send is over it


def _content_digest(alerts: dict[str, dict[str, Any]]) -> str:
    content = sorted((record_id, a["status"], a.get("severity", "")) for record_id, a in alerts.items())
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


async def _pending(
    deps: RouterDeps,
    gid: str,
    stored: Versioned,
    now: datetime,
    records: Mapping[str, dict[str, Any]] | None = None,
) -> _Pending | None:
    """What the group would tell now (None: nothing changed, and no repeat is due or every firing
    alert is acknowledged). ``records``: alert records already in hand (not read again)."""
    group: dict[str, Any] = dict(stored.value)
    alerts: dict[str, dict[str, Any]] = dict(group["alerts"])
    digest = _content_digest(alerts)
    firing = any(a["status"] == "firing" for a in alerts.values())
    last = parse_iso(group.get("lastNotifiedAt"))
    repeat = timedelta(seconds=int(group["repeatInterval"]))
    repeat_due = firing and last is not None and now + _EARLY_SLACK >= last + repeat
    if digest == group.get("notifiedDigest") and not (repeat_due and not await _all_acked(deps, alerts)):
        return None
    notification = Notification(
        gid,
        deps.alerting.receiver(str(group["receiver"])),
        "firing" if firing else "resolved",
        dict(group["groupLabels"]),
        sorted(
            await _described(deps, alerts, records or {}), key=lambda a: (a["status"] != "firing", a["key"])
        ),
        generation=str(group.get("createdAt") or ""),
    )
    repeat_index = int(group.get("notifications", 0)) if repeat_due else 0
    return _Pending(gid, notification, digest, repeat_index, int(group.get("deliveryFailures", 0)), stored)


async def _described(
    deps: RouterDeps, alerts: dict[str, dict[str, Any]], known: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The group's compact entries with each alert's summary and labels from its own record."""
    gate = asyncio.Semaphore(16)

    async def one(record_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        record: Any = known.get(record_id)
        if record is None:
            async with gate:
                stored = await deps.state.kv.get(ACTIVE_NAMESPACE, record_id)
            record = stored.value if stored is not None else None
        record = record if isinstance(record, dict) else {}
        key = str(record.get("key") or entry.get("key") or record_id)
        return {
            **entry,
            "id": record_id,
            "key": key,
            "summary": str(record.get("summary") or entry.get("summary") or key),
            "labels": dict(record.get("labels") or entry.get("labels") or {}),
        }

    return list(await asyncio.gather(*(one(k, e) for k, e in alerts.items())))


async def _settle(deps: RouterDeps, receiver: str, token: float) -> None:
    """Record the send's answer time; if that fails, the in-flight bound stands (never a failure)."""
    try:
        await settle_slot(deps.state.kv, receiver, token, deps.clock())
    except (RetryableError, ConcurrencyError) as exc:
        log.warning("rate window not settled (its in-flight bound stands): %s", type(exc).__name__)


async def _all_acked(deps: RouterDeps, alerts: dict[str, dict[str, Any]]) -> bool:
    """Whether every firing alert of the group was acknowledged (``waveguard alerts ack``): no repeats."""
    for key, alert in alerts.items():
        if alert["status"] != "firing":
            continue
        stored = await deps.state.kv.get(ACTIVE_NAMESPACE, key)
        if stored is None or not isinstance(stored.value, dict) or not stored.value.get("ack"):
            return False
    return True


async def flush_group(
    deps: RouterDeps,
    gid: str,
    *,
    correlation_id: str,
    known: Versioned | None = None,
    records: Mapping[str, dict[str, Any]] | None = None,
) -> str:
    """Deliver the group if it is due and changed (or due a repeat); what happened. ``known``: the
    group as its caller just wrote it, ``records``: alert records in hand (neither is read again).

    Raises:
        RetryableError: storage failed (the flush comes back; nothing is lost).
    """
    now = deps.clock()
    stored = known or await deps.state.kv.get(GROUPS_NAMESPACE, gid)
    if stored is None:
        return "gone"
    due = parse_iso(stored.value.get("nextFlushAt")) or now
    if now + _EARLY_SLACK < due:
        return "not-due"  # a newer flush message is scheduled for the real due time
    pending = await _pending(deps, gid, stored, now, records)
    if pending is None:
        return "unchanged"
    receiver = pending.notification.receiver
    wait, token = await take_slot(deps.state.kv, receiver.name, receiver.limit, now)
    if token is None:
        head = await _backlog_add(deps, receiver.name, gid)
        # Only the backlog's first group comes back when the slot frees (it takes the whole backlog
        # with it); the others come back later, in case that one is lost: a storm does not wake
        # every waiting group every second.
        later = wait if head else max(wait * 10, _FALLBACK_SECONDS)
        await schedule_flush(deps, gid, now + timedelta(seconds=later + random.uniform(0, 0.5)), now)
        return "rate-limited"
    batch = [pending, *await _take_backlog(deps, receiver.name, gid, now)]
    notification, key = _combined(batch)
    try:
        async with once(
            deps.state.idempotency,
            key,
            ttl=_NOTIFY_TTL,
            in_progress_expiry=_NOTIFY_CLAIM,
            busy_message=f"another worker is notifying alert group {gid}",
            correlation_id=correlation_id,
        ) as run:
            if not run.done:
                try:
                    async with asyncio.timeout(IN_FLIGHT_SECONDS - 1):  # within the window's bound
                        await deps.deliver(notification)
                except TimeoutError:
                    raise RetryableError(f"receiver {receiver.name} did not answer in time") from None
                finally:  # its latest possible arrival is now: that is what the window counts
                    await _settle(deps, receiver.name, token)
    except BusyError:
        raise  # another worker is delivering this very content: come back later
    except (RetryableError, PermanentError) as exc:
        for other in batch[1:]:
            await _backlog_add(deps, receiver.name, other.gid)
        await _failed(deps, pending, exc, now, correlation_id)
        return "delivery-failed"
    digest = len(batch) > 1
    gate = asyncio.Semaphore(8)

    async def settle(item: _Pending) -> None:
        async with gate:
            await _after_notify(deps, item, now, correlation_id, audit=not digest)

    await asyncio.gather(*(settle(item) for item in batch))
    if digest:  # one audit entry for the digest, naming how many groups it told
        await deps.state.audit.append(
            AuditEntry(
                ACTOR,
                "alert.notified",
                notification.group_id,
                notification.title[:300],
                correlation_id=correlation_id,
                details={
                    "receiver": receiver.name,
                    "digestOf": len(batch),
                    "alerts": len(notification.alerts),
                },
            )
        )
    if pending.failures >= FAILURES_BEFORE_ALERT:
        await raise_alert(deps.queues, _delivery_alert(receiver.name, "recovered", 0, now, status="resolved"))
    return "digest" if len(batch) > 1 else "notified"


_SEVERITY_RANK: Final = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _rank(severity: object) -> int:
    return _SEVERITY_RANK.get(str(severity), 9)


def _generation(item: _Pending) -> str:
    """The group's creation time, short: a group deleted and created again is told afresh."""
    return hashlib.sha256(item.notification.generation.encode()).hexdigest()[:8]


def _combined(batch: list[_Pending]) -> tuple[Notification, str]:
    """One group's notification and ``once`` key, or a digest of several."""
    if len(batch) == 1:
        item = batch[0]
        return item.notification, f"alert-notify:{item.gid}:{_generation(item)}:{item.digest}:{item.repeat}"
    receiver = batch[0].notification.receiver
    everything = [a for item in batch for a in item.notification.alerts]
    firing = [a for a in everything if a["status"] == "firing"]
    shown = sorted(everything, key=lambda a: (a["status"] != "firing", _rank(a.get("severity")), a["key"]))
    content = sorted(f"{i.gid}:{_generation(i)}:{i.digest}:{i.repeat}" for i in batch)
    digest_id = hashlib.sha256("\n".join(content).encode()).hexdigest()[:32]
    notification = Notification(
        f"digest-{digest_id}",
        receiver,
        "firing" if firing else "resolved",
        {"digest": f"{len(batch)} groups, {len(firing)} firing of {len(everything)} alerts"},
        shown[:_DIGEST_ALERTS],
        digest_of=len(batch),
        digest_groups=tuple(
            {
                "id": item.gid,
                "groupLabels": dict(item.notification.group_labels),
                "status": item.notification.status,
                "firing": len(item.notification.firing),
                "alerts": len(item.notification.alerts),
            }
            for item in batch
        ),
    )
    return notification, f"alert-notify:{notification.group_id}"


async def _backlog_add(deps: RouterDeps, receiver: str, gid: str) -> bool:
    """Add ``gid`` to the receiver's backlog; whether it is (now) the backlog's first group."""
    first: list[bool] = []

    def add(groups: list[str]) -> list[str]:
        updated = groups if gid in groups else [*groups, gid][-_BACKLOG_CAP:]
        first[:] = [bool(updated) and updated[0] == gid]
        return updated

    await _update_backlog(deps, receiver, add)
    return bool(first and first[0])


async def _take_backlog(deps: RouterDeps, receiver: str, gid: str, now: datetime) -> list[_Pending]:
    """Empty the receiver's backlog; the groups in it that still have something to tell."""
    taken: list[str] = []

    def take(groups: list[str]) -> list[str]:
        taken[:] = groups
        return []

    await _update_backlog(deps, receiver, take)
    found: list[_Pending] = []
    for other in dict.fromkeys(taken):
        if other == gid:
            continue
        stored = await deps.state.kv.get(GROUPS_NAMESPACE, other)
        if stored is None:
            continue
        item = await _pending(deps, other, stored, now)
        if item is not None:
            found.append(item)
    return found


_backlog_locks = KeyedLocks()


async def _update_backlog(deps: RouterDeps, receiver: str, change: Callable[[list[str]], list[str]]) -> None:
    async with _backlog_locks.of(receiver):  # one writer per receiver in this process
        await _update_backlog_locked(deps, receiver, change)


async def _update_backlog_locked(
    deps: RouterDeps, receiver: str, change: Callable[[list[str]], list[str]]
) -> None:
    for _ in range(UPDATE_ATTEMPTS * 2):
        stored = await deps.state.kv.get(BACKLOG_NAMESPACE, receiver)
        groups = (
            list(stored.value.get("groups", []))
            if stored is not None and isinstance(stored.value, dict)
            else []
        )
        updated = change(groups)
        if updated == groups and stored is not None:
            return
        try:
            await deps.state.kv.put(
                BACKLOG_NAMESPACE,
                receiver,
                {"groups": updated},
                if_match=stored.etag if stored is not None else None,
                if_absent=stored is None,
            )
            return
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.03))
    raise ConcurrencyError(f"the backlog of receiver {receiver} kept changing; retry")


async def _failed(
    deps: RouterDeps,
    pending: _Pending,
    error: RetryableError | PermanentError,
    now: datetime,
    correlation_id: str,
) -> None:
    """Count the failure on the group, reschedule its flush with back-off, alert on the third."""
    receiver = pending.notification.receiver.name
    failures = pending.failures + 1
    delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1)) * random.uniform(0.9, 1.1)
    if isinstance(error, RetryableError) and error.retry_after:
        delay = max(delay, min(_BACKOFF_MAX, error.retry_after))
    due = now + timedelta(seconds=delay)
    await schedule_flush(deps, pending.gid, due, now)  # the message first: the retry always comes
    async with GROUP_LOCKS.of(pending.gid):
        for _ in range(UPDATE_ATTEMPTS):
            stored = await deps.state.kv.get(GROUPS_NAMESPACE, pending.gid)
            if stored is None:
                return
            group = dict(stored.value)
            group.update(
                deliveryFailures=failures,
                lastDeliveryError=str(error)[:300],
                failingSince=group.get("failingSince") or iso(now),
                nextFlushAt=iso(due),
            )
            try:
                await deps.state.kv.put(GROUPS_NAMESPACE, pending.gid, group, if_match=stored.etag)
                break
            except ConcurrencyError:
                await asyncio.sleep(random.uniform(0.005, 0.05))
        else:
            raise ConcurrencyError(f"alert group {pending.gid} kept changing; retry")
    log.warning(
        "alert delivery failed; retrying later",
        extra={"receiver": receiver, "group": pending.gid, "failures": failures, "retry_in": round(delay, 1)},
    )
    await deps.state.audit.append(
        AuditEntry(
            ACTOR,
            "alert.delivery.failed",
            pending.gid,
            f"{receiver}: {error}"[:500],
            correlation_id=correlation_id,
            details={"receiver": receiver, "failures": failures, "retryAt": iso(due)},
        )
    )
    if failures == FAILURES_BEFORE_ALERT:
        waiting = len(pending.notification.alerts)
        await raise_alert(deps.queues, _delivery_alert(receiver, str(error), waiting, now))


def _delivery_alert(
    receiver: str, error: str, waiting: int, now: datetime, *, status: str = "firing"
) -> Alert:
    summary = (
        f"Receiver {receiver} has failed {FAILURES_BEFORE_ALERT} deliveries in a row ({error}); "
        f"{waiting} alert(s) wait on the queue and are retried with back-off"
        if status == "firing"
        else f"Receiver {receiver} delivers again"
    )
    return Alert(
        key=f"alert-delivery:{receiver}",
        severity="critical",
        summary=summary[:1000],
        source=ACTOR,
        labels={"alertname": "AlertDeliveryFailed", "failedReceiver": receiver},
        details={"receiver": receiver, "error": error[:300], "waiting": waiting},
        occurred_at=now,
        status=status,  # type: ignore[arg-type]
    )


async def _after_notify(
    deps: RouterDeps, item: _Pending, now: datetime, correlation_id: str, *, audit: bool = True
) -> None:
    async with GROUP_LOCKS.of(item.gid):
        await _after_notify_locked(deps, item, now, correlation_id, audit)


async def _after_notify_locked(
    deps: RouterDeps, item: _Pending, now: datetime, correlation_id: str, audit: bool
) -> None:
    gid, notification = item.gid, item.notification
    for attempt in range(UPDATE_ATTEMPTS):
        # first over the group as read before the send (one round trip when nothing came meanwhile)
        stored = item.stored if attempt == 0 else await deps.state.kv.get(GROUPS_NAMESPACE, gid)
        if stored is None:
            return
        group = dict(stored.value)
        told = {str(a.get("id") or alert_id(a["key"])): a["status"] for a in notification.alerts}
        # drop what was told resolved (unless it fired again meanwhile)
        alerts = {
            k: a
            for k, a in group["alerts"].items()
            if not (told.get(k) == "resolved" and a["status"] == "resolved")
        }
        group.update(alerts=alerts, notifiedDigest=item.digest, lastNotifiedAt=iso(now))
        group["notifications"] = int(group.get("notifications", 0)) + 1
        for name in ("deliveryFailures", "lastDeliveryError", "failingSince"):
            group.pop(name, None)
        still_firing = any(a["status"] == "firing" for a in alerts.values())
        try:
            if not alerts:
                await deps.state.kv.delete(GROUPS_NAMESPACE, gid, if_match=stored.etag)
            else:
                due = now + timedelta(seconds=int(group["repeatInterval"]))
                changed = _content_digest(alerts) != item.digest
                if changed:  # something arrived while we were delivering: next interval
                    due = now + timedelta(seconds=int(group["groupInterval"]))
                group["nextFlushAt"] = iso(due)
                if still_firing or changed:  # the message first: a stored due time always has one
                    await schedule_flush(deps, gid, due, now)
                await deps.state.kv.put(GROUPS_NAMESPACE, gid, group, if_match=stored.etag)
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
            continue
        if audit:
            await deps.state.audit.append(
                AuditEntry(
                    ACTOR,
                    "alert.notified",
                    gid,
                    notification.title[:300],
                    correlation_id=correlation_id,
                    details={
                        "receiver": notification.receiver.name,
                        "status": notification.status,
                        "alerts": len(notification.alerts),
                        "digestOf": notification.digest_of,
                    },
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
