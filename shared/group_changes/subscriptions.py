"""One Graph change-notification subscription per watched group, created and renewed on a timer.

``sync_subscriptions`` makes Graph's subscriptions match the watched set (``watched.py``):

- a watched group without a subscription gets one: ``changeType`` ``updated,deleted`` on
  ``groups/{id}``, the plan's ``notificationUrl`` (with the function key as ``?code=``), the derived
  ``lifecycleNotificationUrl``, the ``clientState`` secret, and an expiry just under Graph's limit for
  groups (41,760 minutes). Graph calls the ingress to validate before it answers;
- a subscription with less than ``RENEW_BEFORE`` left is renewed (``PATCH expirationDateTime``);
  one Graph no longer knows (404) is created again;
- a subscription on a group no longer watched is deleted, and so is any other subscription on a
  group that calls WaveGuard's notification URL but is not the recorded one (a sync that died
  between creating and recording it leaves one);
- one sync runs at a time per tenant (a claim on ``subscriptions:sync``; a second gets
  ``RetryableError``).

What was done is recorded in the key-value store (namespace ``graph-subscriptions``, one record per
group: subscription id, expiry, roles, last action) with an index of the groups, so the worker knows
each group's roles and ``waveguard subscriptions list`` can show them. Each group's outcome is
independent: a group whose subscription Graph refuses is reported (``failed``) and the others go on.
Running it twice in a row changes nothing the second time (every record is ``kept``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from shared.config import RolloutPlan
from shared.errors import ConfigError, RetryableError, WaveGuardError
from shared.group_changes.watched import WatchedGroup, WatchedSet, watched_groups
from shared.state import AsyncStores, AuditEntry, Clock, iso, parse_iso, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "ACTOR",
    "CHANGE_TYPE",
    "LIFETIME",
    "MAX_MINUTES",
    "NAMESPACE",
    "RENEW_BEFORE",
    "SubscriptionDeps",
    "SubscriptionStatus",
    "SyncBusyError",
    "group_of_subscription",
    "lifecycle_url",
    "list_subscriptions",
    "read_record",
    "sync_group",
    "sync_subscriptions",
    "sync_subscriptions_waiting",
]

log = logging.getLogger(__name__)

NAMESPACE: Final = "graph-subscriptions"
INDEX_KEY: Final = "_index"
SYNC_LOCK_KEY: Final = "subscriptions:sync"
_SYNC_LOCK: Final = timedelta(minutes=5)
_MAX_LIST_PAGES: Final = 50
ACTOR: Final = "waveguard/subscriptions"
CHANGE_TYPE: Final = "updated,deleted"
MAX_MINUTES: Final = 41760  # Graph's longest subscription on groups (29 days)
# Asked a little under Graph's limit, so a clock a few minutes ahead of Graph's is never refused.
LIFETIME: Final = timedelta(minutes=MAX_MINUTES) - timedelta(minutes=15)
RENEW_BEFORE: Final = timedelta(days=7)

Action = Literal["created", "renewed", "kept", "recreated", "deleted", "failed", "unconfigured"]


@dataclass(frozen=True, slots=True)
class SubscriptionDeps:
    """The plan (subscriptions section), Graph, the state stores and the clock."""

    plan: RolloutPlan
    graph: GraphServiceClient
    state: AsyncStores
    clock: Clock = utc_now


@dataclass(slots=True)
class SubscriptionStatus:
    """One watched group's subscription after a sync (or as recorded, for ``list``)."""

    group_id: str
    roles: tuple[str, ...]
    display_name: str | None = None
    subscription_id: str | None = None
    expires_at: str | None = None
    action: Action | None = None
    detail: str | None = None
    last_notification_at: str | None = None
    watched: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "groupId": self.group_id,
            "displayName": self.display_name,
            "roles": list(self.roles),
            "watched": self.watched,
            "subscriptionId": self.subscription_id,
            "expiresAt": self.expires_at,
            "action": self.action,
            "detail": self.detail,
            "lastNotificationAt": self.last_notification_at,
        }


def lifecycle_url(notification_url: str) -> str:
    """The lifecycle endpoint next to the notification one: ``.../graph/notifications`` becomes
    ``.../graph/lifecycle`` (same query string, so the same function key); any other path is reused."""
    parts = urlsplit(notification_url)
    path = parts.path
    if path.rstrip("/").endswith("/graph/notifications"):
        path = path.rstrip("/")[: -len("notifications")] + "lifecycle"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


async def read_record(state: AsyncStores, group_id: str) -> dict[str, Any] | None:
    """The stored subscription record of ``group_id`` (None: never subscribed)."""
    stored = await state.kv.get(NAMESPACE, group_id.lower())
    return stored.value if stored is not None and isinstance(stored.value, dict) else None


async def sync_subscriptions(
    deps: SubscriptionDeps,
    *,
    correlation_id: str,
    progress: Callable[[SubscriptionStatus], None] | None = None,
) -> list[SubscriptionStatus]:
    """Create, renew, recreate and delete subscriptions so each watched group has exactly one.

    Raises:
        SafetyViolationError: the break-glass exclusion group does not exist.
        RetryableError: Graph or storage failed before any group was looked at.
    """
    settings = deps.plan.subscriptions
    watched = await watched_groups(deps.graph, deps.plan, deps.state.kv)
    if settings.notification_url is None or settings.client_state is None:
        results = [
            SubscriptionStatus(
                g.group_id, g.roles, g.display_name, action="unconfigured",
                detail="subscriptions.notificationUrl is not set in the plan: nothing is subscribed",
            )
            for g in watched.groups
        ]  # fmt: skip
        for status in results:
            _report(progress, status)
        return results
    async with _sync_lock(deps):
        results = []
        for group in watched.groups:
            status = await _sync_one(deps, group, correlation_id)
            results.append(status)
            _report(progress, status)
        for group_id in sorted(await _indexed(deps.state) - {g.group_id for g in watched.groups}):
            status = await _drop(deps, group_id, correlation_id)
            results.append(status)
            _report(progress, status)
        await deps.state.kv.put(NAMESPACE, INDEX_KEY, {"groups": sorted(g.group_id for g in watched.groups)})
        for status in await _delete_orphans(
            deps, {r.subscription_id for r in results if r.subscription_id}, correlation_id
        ):
            results.append(status)
            _report(progress, status)
    return results


async def sync_subscriptions_waiting(
    deps: SubscriptionDeps,
    *,
    correlation_id: str,
    wait: float,
    pause: float = 1.0,
    progress: Callable[[SubscriptionStatus], None] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> list[SubscriptionStatus]:
    """``sync_subscriptions``, waiting up to ``wait`` seconds (checking every ``pause``) for another
    sync that holds the tenant's lock; ``on_wait`` is called once, when the waiting starts.

    Raises:
        SyncBusyError: the lock was still held when ``wait`` ran out.
        (and what ``sync_subscriptions`` raises)
    """
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            return await sync_subscriptions(deps, correlation_id=correlation_id, progress=progress)
        except SyncBusyError:
            if time.monotonic() + pause > deadline:
                raise
            if not waiting and on_wait is not None:
                on_wait()
            waiting = True
            await asyncio.sleep(pause)


class SyncBusyError(RetryableError):
    """Another subscription sync (the timer's, another operator's) holds the tenant's sync lock."""


@contextlib.asynccontextmanager
async def _sync_lock(deps: SubscriptionDeps) -> AsyncIterator[None]:
    """One subscription writer at a time per tenant (the timer, the CLI, a lifecycle event).

    Raises:
        RetryableError: another holds it.
    """
    claim = await deps.state.idempotency.claim(SYNC_LOCK_KEY, ttl=_SYNC_LOCK, in_progress_expiry=_SYNC_LOCK)
    if not claim.acquired:
        raise SyncBusyError(
            "another subscription sync is running for this tenant; retry when it has finished",
            retry_after=30.0,
        )
    try:
        yield
    finally:
        await deps.state.idempotency.release(SYNC_LOCK_KEY)


async def _delete_orphans(
    deps: SubscriptionDeps, keep: set[str], correlation_id: str
) -> list[SubscriptionStatus]:
    """Delete Graph subscriptions that call WaveGuard's URL on a group but are not the recorded ones
    (left by a sync that died between creating and recording, or by lost records)."""
    from shared.graph.client import get_json, request_json

    ours = _endpoint(str(deps.plan.subscriptions.notification_url))
    base = str(deps.graph.request_adapter.base_url).rstrip("/")
    path: str | None = "/subscriptions"
    dropped: list[SubscriptionStatus] = []
    for _ in range(_MAX_LIST_PAGES):
        if path is None:
            break
        page = await get_json(deps.graph, path) or {}
        for item in page.get("value") or []:
            sub_id, resource = str(item.get("id") or ""), str(item.get("resource") or "")
            kind, _, group_id = resource.strip("/").partition("/")
            if not sub_id or sub_id in keep or kind.lower() != "groups" or "/" in group_id:
                continue
            if _endpoint(str(item.get("notificationUrl") or "")) != ours:
                continue  # another application's or another deployment's subscription
            if await group_of_subscription(deps.state, sub_id) is not None:
                continue  # recorded meanwhile (a lifecycle event recreated it): it is not extra
            await request_json(
                deps.graph, "DELETE", f"/subscriptions/{quote(sub_id)}", operation="delete subscription"
            )
            status = SubscriptionStatus(group_id.lower(), (), None, subscription_id=sub_id, action="deleted")
            status.detail = "an extra subscription on this group calling WaveGuard (not the recorded one)"
            await _audit(deps, "subscription.orphan.deleted", group_id.lower(), correlation_id, status)
            dropped.append(status)
        next_link = page.get("@odata.nextLink")
        path = next_link[len(base) :] if isinstance(next_link, str) and next_link.startswith(base) else None
    return dropped


def endpoint_fingerprint(deps: SubscriptionDeps) -> str:
    """A digest of the notification URL (with its key) and the clientState subscriptions carry."""
    settings = deps.plan.subscriptions
    secret = settings.client_state.get_secret_value() if settings.client_state is not None else ""
    return hashlib.sha256(f"{settings.notification_url}\n{secret}".encode()).hexdigest()[:24]


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.netloc or '').lower()}{parts.path.rstrip('/')}"


async def list_subscriptions(deps: SubscriptionDeps) -> tuple[list[SubscriptionStatus], WatchedSet]:
    """The watched groups with their recorded subscriptions (nothing written), and groups recorded
    but no longer watched."""
    from shared.group_changes.worker import DELTA_NAMESPACE

    watched = await watched_groups(deps.graph, deps.plan, deps.state.kv)
    rows: list[SubscriptionStatus] = []
    seen = set()
    for group in watched.groups:
        rows.append(await _recorded(deps, group.group_id, group.roles, group.display_name, DELTA_NAMESPACE))
        seen.add(group.group_id)
    for group_id in sorted(await _indexed(deps.state) - seen):
        row = await _recorded(deps, group_id, (), None, DELTA_NAMESPACE)
        row.watched = False
        rows.append(row)
    return rows, watched


async def _recorded(
    deps: SubscriptionDeps, group_id: str, roles: tuple[str, ...], name: str | None, delta_namespace: str
) -> SubscriptionStatus:
    record = await read_record(deps.state, group_id) or {}
    look = await deps.state.kv.get(delta_namespace, group_id)
    last = look.value.get("lastNotificationAt") if look is not None and isinstance(look.value, dict) else None
    return SubscriptionStatus(
        group_id,
        roles or tuple(record.get("roles") or ()),
        name or record.get("displayName"),
        subscription_id=record.get("subscriptionId"),
        expires_at=record.get("expiresAt"),
        action=record.get("lastAction"),
        detail=record.get("detail"),
        last_notification_at=last if isinstance(last, str) else None,
    )


async def _sync_one(deps: SubscriptionDeps, group: WatchedGroup, correlation_id: str) -> SubscriptionStatus:
    from shared.graph.client import request_json

    now = deps.clock()
    record = await read_record(deps.state, group.group_id) or {}
    status = SubscriptionStatus(group.group_id, group.roles, group.display_name)
    sub_id = record.get("subscriptionId") if isinstance(record.get("subscriptionId"), str) else None
    expires = parse_iso(record.get("expiresAt"))
    try:
        if sub_id and record.get("endpoint") != endpoint_fingerprint(deps):
            # The URL or the clientState changed: Graph would keep calling the old URL, or every
            # notification would be dropped for its old clientState. Replace it.
            await request_json(
                deps.graph, "DELETE", f"/subscriptions/{quote(sub_id)}", operation="delete subscription"
            )
            await deps.state.kv.delete(NAMESPACE, f"sub:{sub_id}")
            status.action, status.detail = "recreated", "the notification URL or clientState changed"
        elif sub_id and expires is not None and expires - now > RENEW_BEFORE:
            found = await request_json(
                deps.graph, "GET", f"/subscriptions/{quote(sub_id)}", operation="get subscription"
            )
            status.action = "kept" if found is not None else "recreated"
        elif sub_id:
            renewed = await request_json(
                deps.graph, "PATCH", f"/subscriptions/{quote(sub_id)}",
                {"expirationDateTime": _graph_time(now + LIFETIME)}, operation="renew subscription",
            )  # fmt: skip
            status.action = "renewed" if renewed is not None else "recreated"
            expires = parse_iso((renewed or {}).get("expirationDateTime")) or now + LIFETIME
        else:
            status.action = "created"
        if status.action in ("created", "recreated"):
            created = await _create(deps, group.group_id, now)
            sub_id = str(created.get("id") or "")
            expires = parse_iso(created.get("expirationDateTime")) or now + LIFETIME
    except WaveGuardError as exc:
        status.action, status.detail = "failed", str(exc)
        status.subscription_id, status.expires_at = sub_id, iso(expires) if expires else None
        log.warning(
            "subscription not synced", extra={"group_id": group.group_id, "error": type(exc).__name__}
        )
        await _save(deps, group, status, now)
        return status
    status.subscription_id, status.expires_at = sub_id, iso(expires) if expires else None
    await _save(deps, group, status, now)
    if status.action != "kept":
        await _audit(deps, f"subscription.{status.action}", group.group_id, correlation_id, status)
    return status


async def _create(deps: SubscriptionDeps, group_id: str, now: datetime) -> dict[str, Any]:
    from shared.errors import PermanentError
    from shared.graph.client import request_json

    settings = deps.plan.subscriptions
    if settings.notification_url is None or settings.client_state is None:
        raise ConfigError("subscriptions.notificationUrl is not set", field="subscriptions.notificationUrl")
    url = str(settings.notification_url)
    body = {
        "changeType": CHANGE_TYPE,
        "notificationUrl": url,
        "lifecycleNotificationUrl": lifecycle_url(url),
        "resource": f"groups/{group_id}",
        "expirationDateTime": _graph_time(now + LIFETIME),
        "clientState": settings.client_state.get_secret_value(),
        "latestSupportedTlsVersion": "v1_2",
    }
    created = await request_json(deps.graph, "POST", "/subscriptions", body, operation="create subscription")
    if not created or not created.get("id"):
        raise PermanentError(
            f"Graph did not create a subscription on group {group_id} (404)", group_id=group_id
        )
    return created


async def _drop(deps: SubscriptionDeps, group_id: str, correlation_id: str) -> SubscriptionStatus:
    from shared.graph.client import request_json

    record = await read_record(deps.state, group_id) or {}
    status = SubscriptionStatus(
        group_id, tuple(record.get("roles") or ()), record.get("displayName"), watched=False
    )
    sub_id = record.get("subscriptionId")
    try:
        if isinstance(sub_id, str) and sub_id:
            await request_json(
                deps.graph, "DELETE", f"/subscriptions/{quote(sub_id)}", operation="delete subscription"
            )
    except WaveGuardError as exc:
        status.action, status.detail, status.subscription_id = "failed", str(exc), sub_id
        return status
    await deps.state.kv.delete(NAMESPACE, group_id)
    if isinstance(sub_id, str) and sub_id:
        await deps.state.kv.delete(NAMESPACE, f"sub:{sub_id}")
    status.action, status.detail = "deleted", "no longer watched"
    await _audit(deps, "subscription.deleted", group_id, correlation_id, status)
    return status


async def drop_subscription(
    deps: SubscriptionDeps, group_id: str, *, reason: str, correlation_id: str
) -> None:
    """Delete a group's subscription and its record (the group was deleted)."""
    status = await _drop(deps, group_id, correlation_id)
    if status.action == "failed":
        log.warning(
            "subscription of a deleted group not dropped", extra={"group_id": group_id, "reason": reason}
        )


async def group_of_subscription(state: AsyncStores, subscription_id: str) -> str | None:
    """The group a subscription WaveGuard created watches (None: not one of ours, or forgotten)."""
    stored = await state.kv.get(NAMESPACE, f"sub:{subscription_id}")
    group_id = stored.value.get("groupId") if stored is not None and isinstance(stored.value, dict) else None
    return group_id if isinstance(group_id, str) else None


async def sync_group(
    deps: SubscriptionDeps, group_id: str, *, correlation_id: str
) -> SubscriptionStatus | None:
    """Make one watched group's subscription exist and be fresh (after ``subscriptionRemoved`` or a
    failed reauthorization); None when the group is not watched.

    Raises:
        RetryableError: Graph or storage failed.
    """
    record = await read_record(deps.state, group_id)
    group: WatchedGroup | None
    if record is not None and record.get("roles"):
        group = WatchedGroup(group_id.lower(), tuple(record["roles"]), record.get("displayName"))
    else:
        group = (await watched_groups(deps.graph, deps.plan, deps.state.kv)).get(group_id)
    if group is None:
        return None
    if deps.plan.subscriptions.notification_url is None:
        return SubscriptionStatus(group.group_id, group.roles, group.display_name, action="unconfigured")
    async with _sync_lock(deps):
        return await _sync_one(deps, group, correlation_id)


async def _indexed(state: AsyncStores) -> set[str]:
    stored = await state.kv.get(NAMESPACE, INDEX_KEY)
    groups = stored.value.get("groups") if stored is not None and isinstance(stored.value, dict) else None
    return {str(g) for g in groups} if isinstance(groups, list) else set()


async def _save(
    deps: SubscriptionDeps, group: WatchedGroup, status: SubscriptionStatus, now: datetime
) -> None:
    if status.subscription_id:
        await deps.state.kv.put(NAMESPACE, f"sub:{status.subscription_id}", {"groupId": group.group_id})
    await deps.state.kv.put(
        NAMESPACE,
        group.group_id,
        {
            "subscriptionId": status.subscription_id,
            "expiresAt": status.expires_at,
            "roles": list(group.roles),
            "displayName": group.display_name,
            "lastAction": status.action,
            "detail": status.detail,
            "syncedAt": iso(now),
            "endpoint": endpoint_fingerprint(deps),
        },
    )


async def _audit(
    deps: SubscriptionDeps, action: str, group_id: str, correlation_id: str, status: SubscriptionStatus
) -> None:
    details = {
        "subscriptionId": status.subscription_id,
        "expiresAt": status.expires_at,
        "roles": list(status.roles),
    }
    await deps.state.audit.append(
        AuditEntry(
            ACTOR, action, group_id, status.detail or action, correlation_id=correlation_id, details=details
        )
    )


def _report(progress: Callable[[SubscriptionStatus], None] | None, status: SubscriptionStatus) -> None:
    if progress is not None:
        progress(status)


def _graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
