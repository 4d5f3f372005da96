"""The ``group-changes`` worker: a notification says "look now"; the group's delta says what changed.

For each group a notification names, the worker reads the membership delta since the link it stored
for that group (``group-delta/<group id>``; the whole membership the first time) and repairs what
must never be:

- a break-glass account added to a watched group (a wave, selector or policy group) is removed
  again at once: critical ``BreakGlassTargeted``;
- a break-glass account missing from the exclusion group is added back: critical
  ``BreakGlassExclusionRemoved``;
- a watched group deleted: critical ``WatchedGroupDeleted`` (its stored link is dropped).

Every repair is idempotent (removing a non-member or adding a member changes nothing) and audited;
the new delta link is stored only after the repairs, so a retried message reads the same delta
again. A ``missed`` lifecycle event re-reads the delta of the subscription's group in the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.alerting import Alert, Severity, raise_alert
from shared.config import RolloutPlan
from shared.envelope import Envelope
from shared.errors import InvalidPayloadError, PermanentError
from shared.group_changes.delta import read_group_delta
from shared.group_changes.notifications import CHANGE_TYPE, LIFECYCLE_TYPE
from shared.pipeline import QueueWorker, Routes, Settlement
from shared.queues import Sender
from shared.state import AsyncStores, AuditEntry, Clock, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.services import Services

__all__ = [
    "ACTOR",
    "DELTA_NAMESPACE",
    "GROUP_CHANGES_WORKER",
    "GroupChangeDeps",
    "GroupRepair",
    "react_to_group",
]

log = logging.getLogger(__name__)

ACTOR: Final = "waveguard/group-changes"
DELTA_NAMESPACE: Final = "group-delta"


@dataclass(frozen=True, slots=True)
class GroupChangeDeps:
    """The plan (break-glass section), Graph, the state stores, the queues and the clock."""

    plan: RolloutPlan
    graph: GraphServiceClient
    state: AsyncStores
    queues: Sender
    clock: Clock = utc_now


@dataclass(slots=True)
class GroupRepair:
    """What one look at one group found and did."""

    group_id: str
    status: Literal["checked", "repaired", "deleted"] = "checked"
    removed_break_glass: list[str] = field(default_factory=list)
    restored_break_glass: list[str] = field(default_factory=list)


async def react_to_group(deps: GroupChangeDeps, group_id: str, *, correlation_id: str) -> GroupRepair:
    """Read the group's delta and repair it (see the module docstring).

    Raises:
        SafetyViolationError: the break-glass set-up cannot be resolved (nothing is written).
        RetryableError: Graph or storage failed; the message comes back and reads the same delta.
    """
    from shared.graph.client import get_json
    from shared.graph.groups import add_member, remove_member
    from shared.graph.guard import resolve_break_glass_ids

    async def read(path: str) -> dict[str, Any] | None:
        return await get_json(deps.graph, path)

    ids = await resolve_break_glass_ids(deps.plan.break_glass, read)
    stored = await deps.state.kv.get(DELTA_NAMESPACE, group_id)
    link = stored.value.get("deltaLink") if stored is not None and isinstance(stored.value, dict) else None
    delta = await read_group_delta(deps.graph, group_id, link if isinstance(link, str) else None)
    repair = GroupRepair(group_id)
    if delta.deleted:
        repair.status = "deleted"
        await _alert(
            deps, "WatchedGroupDeleted", group_id, f"watched group {group_id} was deleted", correlation_id
        )
        await deps.state.kv.delete(DELTA_NAMESPACE, group_id)
        return repair
    added = {member.lower() for member in delta.added}
    if group_id.lower() == ids.exclusion_group_id:
        removed = {member.lower() for member in delta.removed}
        missing = ids.account_ids - added if delta.initial else ids.account_ids & removed
        for account in sorted(missing):
            await add_member(deps.graph, group_id, account)
            repair.restored_break_glass.append(account)
            await _repaired(deps, "breakglass.exclusion.restore", account, group_id, correlation_id)
        if missing:
            await _alert(
                deps, "BreakGlassExclusionRemoved", group_id,
                f"break-glass account(s) {', '.join(sorted(missing))} were taken out of the exclusion group "
                "and have been put back", correlation_id,
            )  # fmt: skip
    else:
        for account in sorted(added & ids.account_ids):
            await remove_member(deps.graph, group_id, account)
            repair.removed_break_glass.append(account)
            await _repaired(deps, "breakglass.target.revert", account, group_id, correlation_id)
        if repair.removed_break_glass:
            await _alert(
                deps, "BreakGlassTargeted", group_id,
                f"break-glass account(s) {', '.join(repair.removed_break_glass)} were added to watched group "
                f"{group_id} and have been removed again", correlation_id,
            )  # fmt: skip
    if repair.removed_break_glass or repair.restored_break_glass:
        repair.status = "repaired"
    await deps.state.kv.put(
        DELTA_NAMESPACE, group_id, {"deltaLink": delta.delta_link, "at": deps.clock().isoformat()}
    )
    return repair


async def _repaired(
    deps: GroupChangeDeps, action: str, account: str, group_id: str, correlation_id: str
) -> None:
    reason = "a break-glass account may never be in a targeted group nor out of its exclusion group"
    entry = AuditEntry(
        ACTOR, action, account, reason, correlation_id=correlation_id, details={"groupId": group_id}
    )
    await deps.state.audit.append(entry)
    log.warning("break-glass membership repaired", extra={"action": action, "group_id": group_id})


async def _alert(
    deps: GroupChangeDeps, alertname: str, group_id: str, summary: str, correlation_id: str
) -> None:
    severity: Severity = "critical"
    alert = Alert(
        key=f"group-changes:{alertname}:{group_id}",
        severity=severity,
        summary=f"{alertname}: {summary}",
        source=ACTOR,
        labels={"alertname": alertname, "severity": severity, "group": group_id},
        details={"groupId": group_id, "correlationId": correlation_id},
        occurred_at=deps.clock(),
    )
    await raise_alert(deps.queues, alert)


def group_change_routes(deps: GroupChangeDeps) -> Routes:
    """``graph.group.changed`` and ``graph.subscription.lifecycle`` → ``react_to_group`` per group."""

    def each_group(select: Callable[[dict[str, Any]], bool]) -> Callable[[Envelope], Awaitable[object]]:
        async def handle(envelope: Envelope) -> object:
            repairs = []
            for entry in _entries(envelope):
                if select(entry):
                    repairs.append(await react_to_group(deps, _group_id(entry), correlation_id=envelope.id))
            return repairs

        return handle

    return {
        CHANGE_TYPE: each_group(lambda entry: True),
        # reauthorizationRequired and subscriptionRemoved need the subscriptions (not built yet)
        LIFECYCLE_TYPE: each_group(
            lambda entry: entry.get("lifecycleEvent") == "missed" and bool(entry.get("resource"))
        ),
    }


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
    return group_id


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
    return GroupChangeDeps(services.plan, services.graph(), services.state, services.queues, services.clock)


# The ``group-changes`` worker as the trigger runs it.
GROUP_CHANGES_WORKER: Final = QueueWorker(
    actor=ACTOR, routes=lambda services: group_change_routes(_deps(services)), settle=settle
)
