"""The rollout timer's steady re-sync, at the cost of what changed: Graph's ``/users/delta``.

Every tick re-syncs the started waves so that a department, country or UPN change no HR event
announced still lands. Reading every user for that costs reads in proportion to the tenant (about
100 reads per wave at 100,000 users) even when nothing changed. Instead:

- A **full** re-sync (every user, ``start_wave_sync``) of every started wave runs when there is no
  stored delta link, the plan changed since the last full one (its hash), the last full one is a
  day old (``FULL_RESYNC_EVERY``), Graph refused the link (expired sync state, or a link that is
  not Graph's), or more users changed than a full read costs (``MAX_CHANGED_USERS``). A link taken
  with ``$deltatoken=latest`` *before* the full reads is stored with the waves whose run started:
  a change during the reads is read again next time.
- Otherwise the tick reads ``/users/delta`` from the stored link: one read when nothing changed.
  A started wave the record does not list as covered (it started since, or its last run did not
  start) is read in full. For the covered ones, each changed user's ``memberOf`` (20 users per
  ``$batch``) gives the wave groups they are in and their selector groups (the plan's, resolved
  and checked as a full run does); each wave is planned over those users only (the same
  ``plan_membership``: never lower protection, break-glass always out, the blast radius) and
  started as a run of its own. Such a run never resolves a blast-radius alert: only a full run
  shows the whole group is within it again.
- The new link is stored with the waves whose run started; a wave whose run did not is read in
  full next tick, so one failing wave holds back no other and no change is lost. A tick that dies
  before storing re-reads the same changes (the writes are idempotent).

Selector-group and wave-group membership changes reach the waves through the group-changes
worker (notifications, and its daily resync), not through this path.

State: ``users-delta/tenant`` = ``{"deltaLink", "planHash", "fullAt", "waves"}``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from shared.errors import (
    InvalidPayloadError,
    PermanentError,
    RetryableError,
    WaveGuardError,
)
from shared.graph.client import get_json
from shared.graph.users_json import group_pairs, member_of_groups_json, segment
from shared.rollout.assignment import UserFacts, assign_wave
from shared.rollout.group_refs import exclusion_group_id
from shared.rollout.membership.desired import USER_SELECT, DesiredMembers, resolve_selector_groups
from shared.rollout.membership.plan import MembershipPlan, plan_membership
from shared.rollout.membership.work import (
    Preview,
    SyncDeps,
    enforced_waves,
    start_wave_sync,
    wave_group_id,
)
from shared.state import iso, parse_iso

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "FULL_RESYNC_EVERY",
    "MAX_CHANGED_USERS",
    "NAMESPACE",
    "ResyncOutcome",
    "resync_started_waves",
]

log = logging.getLogger(__name__)

NAMESPACE: Final = "users-delta"
_KEY: Final = "tenant"
FULL_RESYNC_EVERY: Final = timedelta(hours=24)
# Above this many changed users, one full read per wave costs less than a memberOf read per user.
MAX_CHANGED_USERS: Final = 2_000
_MAX_PAGES: Final = 1_000


@dataclass(frozen=True, slots=True)
class ResyncOutcome:
    """How the tick re-synced: ``full`` or ``changed`` (with how many users changed), and the
    waves whose sync could not start, with why."""

    mode: str
    changed_users: int
    problems: dict[str, str]


class DeltaRefused(PermanentError):
    """Graph no longer knows the stored delta link (or it is not Graph's): read everything."""


async def resync_started_waves(
    deps: SyncDeps, waves: Sequence[str], *, correlation_id: str, now: datetime
) -> ResyncOutcome:
    """Re-sync ``waves`` (the started ones) as the module docstring says.

    Raises:
        RetryableError: Graph or storage failed before the tick's state was stored (the next tick
            reads the same changes again).
    """
    stored = await deps.state.kv.get(NAMESPACE, _KEY)
    value = stored.value if stored is not None else None
    record: dict[str, Any] = dict(value) if isinstance(value, dict) else {}
    plan_hash = _plan_hash(deps)
    full_at = parse_iso(record.get("fullAt"))
    link = record.get("deltaLink")
    why_full = (
        "no delta link yet"
        if not isinstance(link, str)
        else "the plan changed"
        if record.get("planHash") != plan_hash
        else "the daily full re-sync"
        if full_at is None or now - full_at >= FULL_RESYNC_EVERY
        else None
    )
    if why_full is None and isinstance(link, str):
        try:
            changed, next_link = await _read_changes(deps.graph, link)
        except DeltaRefused as exc:
            why_full = f"Graph refused the delta link ({exc.message})"
        else:
            if len(changed) > MAX_CHANGED_USERS:
                why_full = f"{len(changed)} users changed (more than {MAX_CHANGED_USERS})"
            else:
                return await _resync_changed(deps, waves, changed, record, next_link, correlation_id)
    assert why_full is not None
    return await _resync_full(deps, waves, plan_hash, why_full, correlation_id, now)


async def _resync_full(
    deps: SyncDeps, waves: Sequence[str], plan_hash: str, why: str, correlation_id: str, now: datetime
) -> ResyncOutcome:
    log.info("wave re-sync: reading every user", extra={"reason": why, "waves": list(waves)})
    link = await _latest_link(deps.graph)  # taken first: a change during the reads shows next time
    problems = await _start_full(deps, waves, correlation_id)
    # The waves whose full run started are covered from this link on; the others are read in full
    # again next tick (each on its own: one wave that keeps failing holds back no other).
    covered = sorted(w for w in waves if w not in problems)
    record = {"deltaLink": link, "planHash": plan_hash, "fullAt": iso(now), "waves": covered}
    await deps.state.kv.put(NAMESPACE, _KEY, record)
    return ResyncOutcome("full", 0, problems)


async def _resync_changed(
    deps: SyncDeps,
    waves: Sequence[str],
    changed: list[dict[str, Any]],
    record: dict[str, Any],
    next_link: str,
    correlation_id: str,
) -> ResyncOutcome:
    covered = {str(w) for w in record.get("waves") or []}
    # A started wave this path has not read in full yet (it started since, or its last run
    # failed): read in full now; the others over the changed users only.
    uncovered = [w for w in waves if w not in covered]
    rest = [w for w in waves if w in covered]
    problems = await _start_full(deps, uncovered, correlation_id)
    if changed and rest:
        groups = await _groups_of(deps.graph, [str(u["id"]) for u in changed])
        exclusion = await exclusion_group_id(deps.graph, deps.plan)
        resolved = await resolve_selector_groups(deps.graph, deps.plan, exclusion)
        selectors = {gid.lower(): (gid, name) for gid, name in resolved}
        problems |= await _start_changed(deps, rest, changed, groups, selectors, correlation_id)
        log.info("wave re-sync: users changed", extra={"users": len(changed), "waves": list(rest)})
    # The link moves on whatever failed: a wave whose run did not start is read in full next tick.
    update = {**record, "deltaLink": next_link, "waves": sorted(w for w in waves if w not in problems)}
    if update != record:
        await deps.state.kv.put(NAMESPACE, _KEY, update)
    return ResyncOutcome("changed", len(changed), problems)


async def _start_full(deps: SyncDeps, waves: Sequence[str], correlation_id: str) -> dict[str, str]:
    """Start each wave's run over every user; the waves that could not, and why."""
    return await _start(deps, waves, correlation_id, None)


async def _start_changed(
    deps: SyncDeps,
    waves: Sequence[str],
    users: list[dict[str, Any]],
    groups: Mapping[str, list[tuple[str, str | None]]],
    selectors: Mapping[str, tuple[str, str | None]],
    correlation_id: str,
) -> dict[str, str]:
    """Start each wave's run over the changed ``users``; the waves that could not, and why."""

    async def preview(deps: SyncDeps, wave_name: str) -> MembershipPlan:
        return await preview_changed_users(deps, wave_name, users, groups, selectors)

    return await _start(deps, waves, f"{correlation_id}:changed", preview)


async def _start(
    deps: SyncDeps, waves: Sequence[str], correlation_id: str, preview: Preview | None
) -> dict[str, str]:
    problems: dict[str, str] = {}
    for wave in waves:
        try:
            await start_wave_sync(deps, wave, correlation_id=correlation_id, preview=preview)
        except WaveGuardError as exc:
            log.warning("membership sync not started", extra={"wave": wave, "error": type(exc).__name__})
            problems[wave] = str(exc)
    return problems


async def preview_changed_users(
    deps: SyncDeps,
    wave_name: str,
    users: Sequence[Mapping[str, Any]],
    groups: Mapping[str, list[tuple[str, str | None]]],
    selectors: Mapping[str, tuple[str, str | None]],
) -> MembershipPlan:
    """The wave's run over ``users`` only: ``groups`` are each user's direct groups (the wave
    groups they are in now, and their selector groups: those of ``selectors``, the plan's selector
    groups resolved by lower-case id, as a full run resolves them).

    Raises:
        NotFoundError: the wave's group does not exist.
        SafetyViolationError: it is the exclusion group, or the run exceeds the blast radius.
        RetryableError: Graph or storage failed.
    """
    wave = deps.plan.wave(wave_name)
    exclusion = await exclusion_group_id(deps.graph, deps.plan)
    group_id = await wave_group_id(deps, wave_name, exclusion)
    assigned: dict[str, str | None] = {}
    members: set[str] = set()
    skipped: list[str] = []
    actual: list[str] = []
    for user in users:
        user_id = str(user["id"])
        of_user = groups.get(user_id, [])
        facts = UserFacts.of(
            user_id=user_id,
            user_principal_name=user.get("userPrincipalName"),
            department=user.get("department"),
            country=user.get("country"),
            groups=[selectors[gid.lower()] for gid, _ in of_user if gid.lower() in selectors],
        )
        assignment = assign_wave(deps.plan, facts)
        assigned[user_id] = assignment.wave
        if assignment.wave == wave.name:
            members.add(user_id)
        elif assignment.reason == "break-glass":
            skipped.append(user_id)
        if any(gid.lower() == group_id.lower() for gid, _ in of_user):
            actual.append(user_id)
    desired = DesiredMembers(wave.name, frozenset(members), assigned, tuple(skipped), ())
    return plan_membership(wave, group_id, desired, actual, enforced_waves=await enforced_waves(deps))


async def _groups_of(
    graph: GraphServiceClient, user_ids: list[str]
) -> dict[str, list[tuple[str, str | None]]]:
    """Each user's direct groups (id, displayName), 20 users per ``$batch``; a user in more groups
    than one page holds is read again on their own, paged to the end.

    Raises:
        RetryableError: Graph throttled or failed a batch or an item (the tick is retried whole).
        PermanentError: Graph refused a read.
    """
    from shared.graph.batch import MAX_BATCH_REQUESTS, BatchClient, BatchRequest, item_error

    batch = BatchClient.for_graph(graph)
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for start in range(0, len(user_ids), MAX_BATCH_REQUESTS):
        chunk = user_ids[start : start + MAX_BATCH_REQUESTS]
        requests = [
            BatchRequest(str(n), "GET", f"/users/{segment(uid)}/memberOf?$select=id,displayName")
            for n, uid in enumerate(chunk)
        ]
        answers = await batch.send_reads(requests)
        for n, uid in enumerate(chunk):
            answer = answers[str(n)]
            if not answer.ok:
                # 404: deleted since the delta was read, or not replicated yet; the next tick's
                # delta says which (a deleted user comes back as removed and is skipped).
                if answer.status == 404:
                    raise RetryableError("memberOf of a changed user answered 404", user_id=uid)
                raise item_error(answer, "memberOf of a changed user", user_id=uid)
            page = answer.body if isinstance(answer.body, dict) else {}
            if page.get("@odata.nextLink"):
                groups[uid] = await member_of_groups_json(graph, uid)
            else:
                groups[uid] = group_pairs(page)
    return groups


def _plan_hash(deps: SyncDeps) -> str:
    """Changes whenever the plan does (waves, selectors, break-glass): a full re-sync follows."""
    return hashlib.sha256(deps.plan.model_dump_json().encode()).hexdigest()[:32]


async def _latest_link(graph: GraphServiceClient) -> str:
    """A delta link from now, without reading any user.

    Raises:
        RetryableError / PermanentError: Graph failed or refused the read.
    """
    page = await get_json(graph, f"/users/delta?$deltatoken=latest&$select={quote(','.join(USER_SELECT))}")
    link = (page or {}).get("@odata.deltaLink")
    if not isinstance(link, str):
        raise InvalidPayloadError.for_field("@odata.deltaLink", "users/delta gave no delta link")
    return link


async def _read_changes(graph: GraphServiceClient, link: str) -> tuple[list[dict[str, Any]], str]:
    """The users changed since ``link`` (deleted ones left out: Entra drops them from groups itself),
    each once, and the link to store next.

    Raises:
        DeltaRefused: Graph refused the link (expired sync state), or it is not under Graph's URL.
        RetryableError: Graph failed transiently.
    """
    base = str(graph.request_adapter.base_url).rstrip("/")
    changed: dict[str, dict[str, Any]] = {}
    path = _relative(base, link)
    for _ in range(_MAX_PAGES):
        try:
            page = await get_json(graph, path)
        except PermanentError as exc:  # 400 syncStateNotFound / 410 resyncRequired
            raise DeltaRefused(str(exc)) from exc
        if page is None:
            raise DeltaRefused("users/delta answered 404")
        for user in page.get("value") or []:
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                changed.pop(user["id"], None)
                if "@removed" not in user:
                    changed[user["id"]] = user
        if isinstance(page.get("@odata.deltaLink"), str):
            return list(changed.values()), page["@odata.deltaLink"]
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str):
            raise DeltaRefused("a users/delta page has neither a next nor a delta link")
        path = _relative(base, next_link)
    raise DeltaRefused(f"users/delta did not end after {_MAX_PAGES} pages")


def _relative(base: str, link: str) -> str:
    if not link.startswith(base + "/"):
        raise DeltaRefused("the delta link points outside Graph's base URL; it is not followed")
    return link[len(base) :]
