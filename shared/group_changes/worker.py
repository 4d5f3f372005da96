"""The ``group-changes`` worker: a notification says "look now"; the group's delta says what changed.

For each group a message names, the worker reads the membership delta since the link it stored for
that group (``group-delta/<group id>``; the whole membership the first time, or when Graph no longer
knows the link) and reacts according to the group's roles (``watched.py``; recorded with its
subscription, else resolved from the plan):

- a break-glass account in a wave or policy group is removed at once: critical ``BreakGlassTargeted``;
- a break-glass account missing from the exclusion group is added back: critical
  ``BreakGlassExclusionRemoved``;
- a change in a group a wave selector names starts that wave's membership sync (the same sync the
  rollout timer starts), for every wave that has started;
- a member of an enforced wave removed by someone other than WaveGuard (not one of the latest
  membership sync's planned removals): ``WaveMemberRemoved``, and put back when the plan's
  ``groupChanges.readdRemovedWaveMembers`` says so;
- a watched group deleted: critical ``WatchedGroupDeleted``, its subscription and link dropped.

Critical alerts are also recorded as open alerts on the waves concerned (every wave, for the exclusion
and policy groups), which holds their promotion until an operator resolves them.

Every repair is idempotent (removing a non-member or adding a member changes nothing) and audited.
One look per group runs at a time in a process, and at most once per stored link across processes
(``once`` on ``group-look:<group>:<link digest>``); the new link is stored only after the reactions,
so a retried message reads the same delta again and an overlapping notification reads the rest.

Lifecycle events: ``missed`` looks at the group; ``reauthorizationRequired`` reauthorizes the
subscription (or creates it again when Graph no longer has it) and looks; ``subscriptionRemoved``
creates it again and looks. ``graph.group.resync`` (the daily safety net) looks at one group.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.alerting import Alert, Severity, open_alert, raise_alert
from shared.config import RolloutPlan
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError, NotFoundError, PermanentError, RetryableError, WaveGuardError
from shared.group_changes.delta import GroupDelta, read_group_delta
from shared.group_changes.notifications import CHANGE_TYPE, LIFECYCLE_TYPE
from shared.group_changes.subscriptions import (
    SubscriptionDeps,
    drop_subscription,
    group_of_subscription,
    read_record,
    sync_group,
)
from shared.group_changes.watched import WatchedGroup, watched_groups
from shared.keyed_locks import KeyedLocks
from shared.pipeline import QueueWorker, Routes, Settlement
from shared.queues import Sender
from shared.state import AsyncStores, AuditEntry, Clock, utc_now
from shared.state.once import once

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.graph.guard import BreakGlassIds
    from shared.services import Services

__all__ = [
    "ACTOR",
    "DELTA_NAMESPACE",
    "GROUP_CHANGES_WORKER",
    "RESYNC_TYPE",
    "GroupChangeDeps",
    "GroupRepair",
    "react_to_group",
]

log = logging.getLogger(__name__)

ACTOR: Final = "waveguard/group-changes"
DELTA_NAMESPACE: Final = "group-delta"
RESYNC_TYPE: Final = "graph.group.resync"
_LOOK_TTL: Final = timedelta(days=2)
# Longer than a first read of a large group under throttling can take.
_LOOK_CLAIM: Final = timedelta(minutes=6)
_LOOK_ATTEMPTS: Final = 3

MembershipStart = Callable[..., Awaitable[object]]
Trigger = Literal["notification", "lifecycle", "resync", "manual"]


@dataclass(frozen=True, slots=True)
class GroupChangeDeps:
    """The plan, Graph, the state stores, the queues, the clock, and how to start a wave's membership
    sync (None: selector changes are only logged)."""

    plan: RolloutPlan
    graph: GraphServiceClient
    state: AsyncStores
    queues: Sender
    clock: Clock = utc_now
    start_membership: MembershipStart | None = None

    @property
    def subscriptions(self) -> SubscriptionDeps:
        return SubscriptionDeps(self.plan, self.graph, self.state, self.clock)


@dataclass(slots=True)
class GroupRepair:
    """What one look at one group found and did."""

    group_id: str
    status: Literal["checked", "repaired", "deleted", "ignored", "seen"] = "checked"
    roles: tuple[str, ...] = ()
    removed_break_glass: list[str] = field(default_factory=list)
    restored_break_glass: list[str] = field(default_factory=list)
    removed_wave_members: list[str] = field(default_factory=list)
    readded_wave_members: list[str] = field(default_factory=list)
    syncs_started: list[str] = field(default_factory=list)


# One writer per group in this process (other processes are kept apart by ETags or ``once``).
_group_locks = KeyedLocks()


async def react_to_group(
    deps: GroupChangeDeps, group_id: str, *, correlation_id: str, trigger: Trigger = "notification"
) -> GroupRepair:
    """Read the group's delta and react to it (see the module docstring).

    Raises:
        SafetyViolationError: the break-glass set-up cannot be resolved (nothing is written).
        BusyError: another process is looking at the same delta (the message comes back).
        RetryableError: Graph or storage failed; the message comes back and reads the same delta.
    """
    group_id = group_id.lower()
    async with _group_locks.of(group_id):
        for _ in range(_LOOK_ATTEMPTS):
            repair = await _look_once(deps, group_id, correlation_id, trigger)
            if repair is not None:
                return repair
        # Every stored state we read had been looked at by another process meanwhile: theirs covers
        # this notification's change only if it read after it, so ask for one more look later.
        raise RetryableError(
            f"group {group_id} kept changing under other workers; looking again", retry_after=2.0
        )


async def _look_once(
    deps: GroupChangeDeps, group_id: str, correlation_id: str, trigger: Trigger
) -> GroupRepair | None:
    """One look from the stored state; None when another process already looked from that state
    (the caller reads the newer state and looks again)."""
    stored = await deps.state.kv.get(DELTA_NAMESPACE, group_id)
    previous: dict[str, Any] = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    group = await _roles(deps, group_id, previous)
    if group is None:
        log.info("change on a group WaveGuard does not watch ignored", extra={"group_id": group_id})
        return GroupRepair(group_id, status="ignored")
    if previous.get("deleted"):
        return GroupRepair(group_id, status="deleted", roles=group.roles)
    link = previous.get("deltaLink") if isinstance(previous.get("deltaLink"), str) else None
    # The stored state (link and when it was stored) names the look: Graph may hand back the same
    # link when nothing changed, so the link alone would call the next, different look "done".
    # With nothing stored (the first look ever, or a record removed), there is no state to name:
    # that look is not deduplicated across processes (its repairs are idempotent anyway).
    state_id = f"{link or 'initial'}\n{previous['at']}" if previous.get("at") else f"initial\n{uuid.uuid4()}"
    digest = hashlib.sha256(state_id.encode()).hexdigest()[:32]
    async with once(
        deps.state.idempotency,
        f"group-look:{group_id}:{digest}",
        ttl=_LOOK_TTL,
        in_progress_expiry=_LOOK_CLAIM,
        busy_message=f"another worker is reading the changes of group {group_id}",
        correlation_id=correlation_id,
    ) as run:
        if run.done:
            return None
        repair, delta = await _look(deps, group, link, correlation_id, look_id=digest, trigger=trigger)
        now = deps.clock().isoformat()
        last_note = now if trigger == "notification" else previous.get("lastNotificationAt")
        record: dict[str, Any] = {
            "at": now,
            "trigger": trigger,
            "lastNotificationAt": last_note,
            "roles": list(group.roles),
        }
        if delta.deleted:
            record["deleted"] = True
        else:
            record["deltaLink"] = delta.delta_link
        await deps.state.kv.put(DELTA_NAMESPACE, group_id, record)
        return repair


async def _roles(deps: GroupChangeDeps, group_id: str, previous: dict[str, Any]) -> WatchedGroup | None:
    """The group's roles as recorded with its subscription, else at the last look, else as the plan
    resolves now (a deleted group can no longer be resolved)."""
    record = await read_record(deps.state, group_id) or {}
    for roles in (record.get("roles"), previous.get("roles")):
        if isinstance(roles, list) and roles:
            return WatchedGroup(group_id, tuple(str(r) for r in roles), record.get("displayName"))
    return (await watched_groups(deps.graph, deps.plan, deps.state.kv)).get(group_id)


async def _read_delta(deps: GroupChangeDeps, group_id: str, link: str | None) -> GroupDelta:
    try:
        return await read_group_delta(deps.graph, group_id, link)
    except PermanentError as exc:
        if link is None:
            raise
        # Graph no longer knows the link (expired or foreign sync state): read the whole membership.
        log.warning(
            "delta link refused; reading the whole group", extra={"group_id": group_id, "error": str(exc)}
        )
        return await read_group_delta(deps.graph, group_id, None)


async def _look(
    deps: GroupChangeDeps,
    group: WatchedGroup,
    link: str | None,
    correlation_id: str,
    *,
    look_id: str,
    trigger: Trigger,
) -> tuple[GroupRepair, GroupDelta]:
    ids = await _break_glass_ids(deps)
    delta = await _read_delta(deps, group.group_id, link)
    repair = GroupRepair(group.group_id, roles=group.roles)
    if delta.deleted:
        repair.status = "deleted"
        await _alert(
            deps, group, "WatchedGroupDeleted", "critical",
            f"watched group {_name(group)} ({', '.join(group.roles)}) was deleted", correlation_id,
        )  # fmt: skip
        await drop_subscription(
            deps.subscriptions, group.group_id, reason="deleted", correlation_id=correlation_id
        )
        return repair, delta
    added = {member.lower() for member in delta.added}
    removed = {member.lower() for member in delta.removed}
    if group.is_exclusion:
        await _restore_exclusion(
            deps, group, ids.account_ids, added, removed, delta.initial, repair, correlation_id
        )
    if group.targeted:
        await _revert_targeting(deps, group, added & ids.account_ids, repair, correlation_id)
    if not delta.initial:
        people_removed = removed - ids.account_ids
        for wave in group.waves:
            await _wave_members_removed(deps, group, wave, people_removed, repair, correlation_id)
    # A first read (no link yet, or Graph refused the stored one) cannot tell what changed: when a
    # notification says something did, the selector's waves are synced anyway (a sync is idempotent).
    selector_changed = bool((added | removed) - ids.account_ids) if not delta.initial else trigger != "resync"
    if group.selector_of and selector_changed:
        await _start_syncs(deps, group, repair, correlation_id, look_id)
    if repair.removed_break_glass or repair.restored_break_glass or repair.readded_wave_members:
        repair.status = "repaired"
    return repair, delta


# Resolved break-glass ids per plan section, kept briefly: a burst of changes does not resolve them
# again for every look, and a renamed or recreated account is seen within a minute.
_IDS_TTL: Final = 60.0
_ids_cache: dict[str, tuple[float, BreakGlassIds]] = {}


async def _break_glass_ids(deps: GroupChangeDeps) -> BreakGlassIds:
    from shared.graph.client import get_json
    from shared.graph.guard import resolve_break_glass_ids

    key = deps.plan.break_glass.model_dump_json()
    cached = _ids_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < _IDS_TTL:
        return cached[1]

    async def read(path: str) -> dict[str, Any] | None:
        return await get_json(deps.graph, path)

    ids = await resolve_break_glass_ids(deps.plan.break_glass, read)
    _ids_cache[key] = (time.monotonic(), ids)
    return ids


async def _restore_exclusion(
    deps: GroupChangeDeps,
    group: WatchedGroup,
    accounts: frozenset[str],
    added: set[str],
    removed: set[str],
    initial: bool,
    repair: GroupRepair,
    correlation_id: str,
) -> None:
    from shared.graph.groups import add_member

    missing = accounts - added if initial else accounts & removed
    for account in sorted(missing):
        await add_member(deps.graph, group.group_id, account)
        repair.restored_break_glass.append(account)
        await _audit(
            deps, "breakglass.exclusion.restore", account, group.group_id, _BG_REASON, correlation_id
        )
    if missing:
        await _alert(
            deps, group, "BreakGlassExclusionRemoved", "critical",
            f"break-glass account(s) {', '.join(sorted(missing))} were taken out of the exclusion group "
            "and have been put back", correlation_id,
        )  # fmt: skip


async def _revert_targeting(
    deps: GroupChangeDeps, group: WatchedGroup, accounts: set[str], repair: GroupRepair, correlation_id: str
) -> None:
    from shared.graph.groups import remove_member

    for account in sorted(accounts):
        await remove_member(deps.graph, group.group_id, account)
        repair.removed_break_glass.append(account)
        await _audit(deps, "breakglass.target.revert", account, group.group_id, _BG_REASON, correlation_id)
    if repair.removed_break_glass:
        await _alert(
            deps, group, "BreakGlassTargeted", "critical",
            f"break-glass account(s) {', '.join(repair.removed_break_glass)} were added to watched group "
            f"{_name(group)} ({', '.join(group.roles)}) and have been removed again", correlation_id,
        )  # fmt: skip


async def _wave_members_removed(
    deps: GroupChangeDeps,
    group: WatchedGroup,
    wave: str,
    removed: set[str],
    repair: GroupRepair,
    correlation_id: str,
) -> None:
    from shared.graph.groups import add_member
    from shared.rollout.membership import planned_removals
    from shared.rollout.wave_state import WaveState, read_wave_record

    if not removed:
        return
    status, _ = await read_wave_record(deps.state.kv, wave)
    if status.state is not WaveState.ENFORCED:
        return
    by_others = sorted(removed - await planned_removals(deps.state, wave))
    if not by_others:
        return
    repair.removed_wave_members.extend(by_others)
    readd = deps.plan.group_changes.readd_removed_wave_members
    for member in by_others:
        reason = f"removed from enforced wave {wave} by someone other than WaveGuard"
        await _audit(deps, "wave.member.removed", member, group.group_id, reason, correlation_id)
        if readd:
            try:
                await add_member(deps.graph, group.group_id, member)
            except NotFoundError:  # the user was deleted: nothing to put back
                await _audit(
                    deps,
                    "wave.member.gone",
                    member,
                    group.group_id,
                    "no longer in the directory",
                    correlation_id,
                )
                continue
            repair.readded_wave_members.append(member)
            await _audit(
                deps, "wave.member.readd", member, group.group_id,
                "groupChanges.readdRemovedWaveMembers is on", correlation_id,
            )  # fmt: skip
    shown = ", ".join(by_others[:10]) + (f" and {len(by_others) - 10} more" if len(by_others) > 10 else "")
    action = "put back" if readd else "not put back (groupChanges.readdRemovedWaveMembers is off)"
    await _alert(
        deps, group, "WaveMemberRemoved", "high",
        f"{len(by_others)} member(s) of enforced wave {wave} were removed by someone other than WaveGuard "
        f"({shown}); {action}", correlation_id, wave=wave,
    )  # fmt: skip


async def _start_syncs(
    deps: GroupChangeDeps, group: WatchedGroup, repair: GroupRepair, correlation_id: str, look_id: str
) -> None:
    from shared.rollout.wave_state import WaveState, read_wave_record

    for wave in group.selector_of:
        status, _ = await read_wave_record(deps.state.kv, wave)
        if status.state is WaveState.PLANNED:
            continue  # its first sync comes with its start
        if deps.start_membership is None:
            log.info("selector group changed; no membership sync wired", extra={"wave": wave})
            continue
        try:
            # One sync run per look (the run id derives from it): a redelivered look starts the same
            # run, the next change a new one.
            await deps.start_membership(wave, correlation_id=f"group-change:{group.group_id}:{look_id}")
        except RetryableError:
            raise
        except WaveGuardError as exc:
            log.warning("membership sync not started", extra={"wave": wave, "error": type(exc).__name__})
            await _audit(deps, "wave.sync.not-started", wave, group.group_id, str(exc), correlation_id)
            continue
        repair.syncs_started.append(wave)
        reason = f"selector group {_name(group)} changed"
        await _audit(deps, "wave.sync.started", wave, group.group_id, reason, correlation_id)


_BG_REASON: Final = "a break-glass account may never be in a targeted group nor out of its exclusion group"


def _name(group: WatchedGroup) -> str:
    return f"{group.display_name} ({group.group_id})" if group.display_name else group.group_id


async def _audit(
    deps: GroupChangeDeps, action: str, target: str, group_id: str, reason: str, correlation_id: str
) -> None:
    entry = AuditEntry(
        ACTOR, action, target, reason, correlation_id=correlation_id, details={"groupId": group_id}
    )
    await deps.state.audit.append(entry)
    log.warning("group change handled", extra={"action": action, "group_id": group_id})


async def _alert(
    deps: GroupChangeDeps,
    group: WatchedGroup,
    alertname: str,
    severity: Severity,
    summary: str,
    correlation_id: str,
    *,
    wave: str | None = None,
) -> None:
    labels = {"alertname": alertname, "severity": severity, "group": group.group_id}
    if wave is not None:
        labels["wave"] = wave
    alert = Alert(
        key=f"group-changes:{alertname}:{group.group_id}",
        severity=severity,
        summary=f"{alertname}: {summary}",
        source=ACTOR,
        labels=labels,
        details={"groupId": group.group_id, "roles": list(group.roles), "correlationId": correlation_id},
        occurred_at=deps.clock(),
    )
    envelope = await raise_alert(deps.queues, alert)
    if severity == "critical":
        # Until an operator resolves it, a critical alert holds promotion of the waves it concerns.
        concerned = (wave,) if wave else group.waves or tuple(w.name for w in deps.plan.waves)
        for name in concerned:
            await open_alert(deps.state.kv, name, alert, alert_id=envelope.id)


def group_change_routes(deps: GroupChangeDeps) -> Routes:
    """Change, resync and lifecycle envelopes → ``react_to_group`` per group.

    Each group of a batch is handled on its own: a group that fails does not keep the others from
    being looked at; once all were tried, the first failure is raised (retryable: the message comes
    back and the groups already done are quick no-ops; permanent: settled and alerted).
    """

    async def each(envelope: Envelope, handle: Callable[[dict[str, Any]], Awaitable[object]]) -> object:
        results: list[object] = []
        failures: list[Exception] = []
        for entry in _entries(envelope):
            try:
                results.append(await handle(entry))
            except (WaveGuardError, InvalidPayloadError) as exc:
                log.warning("group change entry failed", extra={"error": type(exc).__name__})
                failures.append(exc)
        retryable = [f for f in failures if isinstance(f, RetryableError)]
        if retryable or failures:
            raise (retryable or failures)[0]
        return results

    def look(trigger: Trigger) -> Callable[[Envelope], Awaitable[object]]:
        async def handle(envelope: Envelope) -> object:
            seen: set[str] = set()

            async def one(entry: dict[str, Any]) -> object:
                group_id = _group_id(entry)
                if group_id in seen:
                    return None
                seen.add(group_id)
                return await react_to_group(deps, group_id, correlation_id=envelope.id, trigger=trigger)

            return [r for r in await _as_list(each(envelope, one)) if r is not None]

        return handle

    async def lifecycle(envelope: Envelope) -> object:
        return await each(envelope, lambda entry: _lifecycle(deps, entry, envelope.id))

    return {CHANGE_TYPE: look("notification"), RESYNC_TYPE: look("resync"), LIFECYCLE_TYPE: lifecycle}


async def _as_list(result: Awaitable[object]) -> list[Any]:
    value = await result
    return list(value) if isinstance(value, list) else []


async def _lifecycle(deps: GroupChangeDeps, entry: dict[str, Any], correlation_id: str) -> GroupRepair | None:
    event = entry.get("lifecycleEvent")
    sub_id = str(entry.get("subscriptionId") or "")
    group_id = await group_of_subscription(deps.state, sub_id) if sub_id else None
    if group_id is None and entry.get("resource"):
        group_id = _group_id(entry)
    if group_id is None:
        log.warning("lifecycle event for a subscription WaveGuard does not know", extra={"event": event})
        return None
    problem: WaveGuardError | None = None
    try:
        if event == "reauthorizationRequired":
            await _reauthorize(deps, sub_id, group_id, correlation_id)
        elif event == "subscriptionRemoved":
            await sync_group(deps.subscriptions, group_id, correlation_id=correlation_id)
            await _audit(
                deps, "subscription.recreated", sub_id, group_id, "subscriptionRemoved", correlation_id
            )
    except WaveGuardError as exc:  # the look below still happens; the failure is raised after it
        problem = exc
    # Whatever the event, changes may have gone unnoticed meanwhile: look at the group now.
    repair = await react_to_group(deps, group_id, correlation_id=correlation_id, trigger="lifecycle")
    if problem is not None:
        raise problem
    return repair


async def _reauthorize(deps: GroupChangeDeps, sub_id: str, group_id: str, correlation_id: str) -> None:
    from urllib.parse import quote

    from shared.graph.client import request_json

    try:
        done = await request_json(
            deps.graph,
            "POST",
            f"/subscriptions/{quote(sub_id)}/reauthorize",
            operation="reauthorize subscription",
        )
    except PermanentError as exc:  # refused: make a fresh one instead
        log.warning("reauthorization refused; recreating", extra={"error": type(exc).__name__})
        done = None
    if done is None:  # Graph no longer has it, or refused it: create it again
        await sync_group(deps.subscriptions, group_id, correlation_id=correlation_id)
    await _audit(
        deps, "subscription.reauthorized", sub_id, group_id, "reauthorizationRequired", correlation_id
    )


def _entries(envelope: Envelope) -> list[dict[str, Any]]:
    entries = envelope.payload.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidPayloadError.for_field("payload.entries", "expected a list of objects")
    return entries


def _group_id(entry: dict[str, Any]) -> str:
    resource = str(entry.get("resource") or "")
    kind, _, group_id = resource.strip("/").partition("/")
    if kind.lower() != "groups" or not group_id or "/" in group_id:
        raise InvalidPayloadError.for_field(
            "payload.entries[].resource", f"expected groups/<id>, got {resource!r}"
        )
    return group_id.lower()


def settle(error: PermanentError, envelope: Envelope | None) -> Settlement:
    """A permanent group-change failure: high, or critical when the break-glass set-up is at stake."""
    envelope_id = envelope.id if envelope is not None else "unparseable"
    critical = getattr(error, "rule", None) == "break-glass"
    return Settlement(
        action="group.change.failed",
        target=envelope_id,
        alertname="GroupChangeFailed",
        severity="critical" if critical else "high",
        alert_key=f"group-changes:{envelope_id}",
    )


def _deps(services: Services) -> GroupChangeDeps:
    async def start_membership(wave: str, *, correlation_id: str) -> object:
        from shared.rollout.membership import start_wave_sync

        return await start_wave_sync(services.membership, wave, correlation_id=correlation_id)

    return GroupChangeDeps(
        services.plan, services.graph(), services.state, services.queues, services.clock, start_membership
    )


# The ``group-changes`` worker as the trigger runs it.
GROUP_CHANGES_WORKER: Final = QueueWorker(
    actor=ACTOR, routes=lambda services: group_change_routes(_deps(services)), settle=settle
)
