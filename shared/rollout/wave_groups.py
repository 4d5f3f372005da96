"""Find or create a wave's target group, once, however many workers ask at the same moment.

A group the plan names by displayName and nobody created yet is created as a security group
(creating it only adds protection). The creation is claimed with a marker in
``wave-groups/<wave>`` and the new id recorded over that marker
only (ETag), so two workers never both record one. The record is read before the displayName:
a duplicate of the name, left by a worker that lost a race, cannot make the name ambiguous for
WaveGuard; the loser notes its group as an orphan before deleting it, and whoever reads the
record next finishes a deletion a crash interrupted. A recorded group Graph does not show yet
(directory replication after creation) is waited for, never replaced.

The record, ``wave-groups/<wave>``: ``{"groupId", "createdAt"}`` once WaveGuard created the wave's
target group, ``{"creatingSince"}`` while a worker creates it, and ``"orphans"``: groups a worker
that lost a creation race made and still has to delete. Readers resolve a wave's group by this
record before its displayName.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final, NamedTuple, Protocol

from shared.config import RolloutPlan, Wave
from shared.errors import PermanentError, RetryableError, SafetyViolationError
from shared.rollout.group_refs import refuse_exclusion_group, wave_field
from shared.state import AsyncKeyValuePort, AsyncStores, Clock, ConcurrencyError, Versioned, iso, parse_iso

__all__ = [
    "WAVE_GROUPS_NAMESPACE",
    "GroupDirectory",
    "WaveGroupCache",
    "WaveGroupDeps",
    "ensure_wave_group",
    "recorded_group_id",
]

WAVE_GROUPS_NAMESPACE: Final = "wave-groups"


class GroupDirectory(Protocol):
    """The group reads and writes a wave's target group needs (Graph in production)."""

    async def find_group_id(self, *, group_id: str | None, display_name: str | None) -> str | None:
        """The group's id by id or by unique displayName, or None when absent."""
        ...

    async def create_security_group(self, display_name: str, *, description: str) -> str:
        """Create a security group; returns its id."""
        ...

    async def delete_group(self, group_id: str) -> bool:
        """Delete the group; False when it was already gone."""
        ...


class WaveGroupDeps(Protocol):
    """What finding or creating a wave group needs (the onboarding ``Deps`` fits)."""

    @property
    def plan(self) -> RolloutPlan: ...

    @property
    def graph(self) -> GroupDirectory: ...

    @property
    def state(self) -> AsyncStores: ...

    @property
    def clock(self) -> Clock: ...

    async def audit(
        self, action: str, target: str, reason: str, correlation_id: str, **details: object
    ) -> None:
        """Append an audit entry for a write made to the directory."""
        ...


async def recorded_group_id(kv: AsyncKeyValuePort, wave: str) -> str | None:
    """The id of the group WaveGuard created for ``wave``, or None (never created, or creating now).

    Raises:
        RetryableError: the store is unavailable.
    """
    stored = await kv.get(WAVE_GROUPS_NAMESPACE, wave)
    value: Any = stored.value if stored is not None else None
    group_id = value.get("groupId") if isinstance(value, dict) else None
    return group_id if isinstance(group_id, str) and group_id else None


# A creation marker older than this was left by a worker that died.
_CREATION_STALE: Final = timedelta(minutes=2)
# A group recorded this recently may not be readable yet (Entra directory replication).
_REPLICATION_GRACE: Final = timedelta(minutes=10)
_CREATION_POLLS: Final = 40
_CREATION_POLL_SECONDS: Final = 0.25
_RECORD_ATTEMPTS: Final = 3


class WaveGroupCache:
    """The wave groups one process has resolved (and checked against the break-glass exclusion
    group), for ``ttl_seconds``: a burst of hires resolves each wave's group once, not per hire.

    Keyed by the wave's name, its group reference and the exclusion group reference, so a changed
    plan resolves afresh. A caller that finds a cached group gone (Graph answers 404 on a write)
    calls ``forget`` and retries.
    """

    def __init__(self, ttl_seconds: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._groups: dict[tuple[object, ...], tuple[float, str]] = {}

    @staticmethod
    def _key(wave: Wave, plan: RolloutPlan) -> tuple[object, ...]:
        ref, exclusion = wave.group, plan.break_glass.exclusion_group
        return (wave.name, ref.id, ref.display_name, exclusion.id, exclusion.display_name)

    def get(self, wave: Wave, plan: RolloutPlan) -> str | None:
        """The group id resolved within the TTL, or None."""
        cached = self._groups.get(self._key(wave, plan))
        if cached is None or self._clock() - cached[0] >= self._ttl:
            return None
        return cached[1]

    def put(self, wave: Wave, plan: RolloutPlan, group_id: str) -> None:
        self._groups[self._key(wave, plan)] = (self._clock(), group_id)

    def forget(self, wave: Wave, plan: RolloutPlan) -> None:
        self._groups.pop(self._key(wave, plan), None)


async def ensure_wave_group(
    wave: Wave, deps: WaveGroupDeps, correlation_id: str, *, cache: WaveGroupCache | None = None
) -> str:
    """The id of the wave's target group, creating it as a security group if the plan names one
    that does not exist yet (by displayName; a configured id that is missing is a config error).
    Compared by id with the break-glass exclusion group, which can never be a wave group.

    Raises:
        SafetyViolationError: the wave's group resolves to the break-glass exclusion group, or that
            group does not exist.
        PermanentError: the configured group id does not exist, or several groups that WaveGuard
            did not record share the displayName.
        RetryableError: Graph or storage failed, another worker is creating the group now, or the
            group recorded a moment ago is not visible yet.
    """
    cached = cache.get(wave, deps.plan) if cache is not None else None
    if cached is not None:
        return cached
    group_id = await _ensure_wave_group(wave, deps, correlation_id)
    ref = deps.plan.break_glass.exclusion_group
    name = None if ref.id else ref.display_name
    exclusion = await deps.graph.find_group_id(group_id=ref.id, display_name=name)
    if exclusion is None:
        raise SafetyViolationError(
            f"breakGlass.exclusionGroup: group {ref} not found in the tenant; nothing is written without it",
            rule="break-glass",
            field="breakGlass.exclusionGroup",
        )
    refuse_exclusion_group(group_id, exclusion, field=wave_field(deps.plan, wave.name))
    if cache is not None:
        cache.put(wave, deps.plan, group_id)
    return group_id


async def _ensure_wave_group(wave: Wave, deps: WaveGroupDeps, correlation_id: str) -> str:
    ref = wave.group
    if ref.id is not None or not ref.display_name:
        found = await deps.graph.find_group_id(group_id=ref.id, display_name=ref.display_name)
        if found is None:
            raise PermanentError(
                f"wave {wave.name}: target group {ref.id} does not exist; fix waves[].group in the plan",
                correlation_id=correlation_id,
                wave=wave.name,
            )
        return found
    recorded = await _recorded_group(wave, deps, correlation_id)
    if recorded is not None:
        return recorded
    found = await deps.graph.find_group_id(group_id=None, display_name=ref.display_name)
    if found is not None:
        return found
    claim = await _mark_creating(wave, deps)
    if claim.existing is not None:
        return claim.existing  # another worker finished creating it a moment ago
    if not claim.mine:
        return await _wait_for_other_creator(wave, deps, correlation_id)
    group_id = await deps.graph.create_security_group(
        ref.display_name,
        description=f"WaveGuard rollout wave '{wave.name}': the Conditional Access target group. "
        "Membership is managed by WaveGuard.",
    )
    await deps.audit(
        "wave.group.create",
        group_id,
        f"target group of wave {wave.name} did not exist",
        correlation_id,
        wave=wave.name,
    )
    return await _record_created(wave, group_id, claim.etag, deps, correlation_id)


async def _recorded_group(wave: Wave, deps: WaveGroupDeps, correlation_id: str) -> str | None:
    """The group recorded for the wave if it exists (someone may have deleted it); orphans of a
    lost race are deleted first.

    Raises:
        RetryableError: the recorded group is young and not visible yet, or Graph/storage failed.
    """
    stored = await deps.state.kv.get(WAVE_GROUPS_NAMESPACE, wave.name)
    value = _value(stored)
    recorded = value.get("groupId")
    if not isinstance(recorded, str):
        return None
    if value.get("orphans"):
        await _delete_orphans(wave, stored, deps, correlation_id)
    found = await deps.graph.find_group_id(group_id=recorded, display_name=None)
    if found is None and _young(value, deps):
        raise RetryableError(
            f"the group of wave {wave.name} was created at {value.get('createdAt')} and is not visible "
            "yet (directory replication)",
            retry_after=30,
            correlation_id=correlation_id,
        )
    return found


async def _delete_orphans(
    wave: Wave, stored: Versioned | None, deps: WaveGroupDeps, correlation_id: str
) -> None:
    value = _value(stored)
    for orphan in [str(o) for o in value.get("orphans", [])]:
        if await deps.graph.delete_group(orphan):
            reason = f"a duplicate target group of wave {wave.name} left by a lost creation race"
            await deps.audit("wave.group.delete", orphan, reason, correlation_id, wave=wave.name)
    rest = {k: v for k, v in value.items() if k != "orphans"}
    if stored is not None:
        # If someone changed the record meanwhile, a later reader deletes again (idempotent).
        with contextlib.suppress(ConcurrencyError):
            await deps.state.kv.put(WAVE_GROUPS_NAMESPACE, wave.name, rest, if_match=stored.etag)


async def _record_created(
    wave: Wave, group_id: str, etag: str | None, deps: WaveGroupDeps, correlation_id: str
) -> str:
    """Record the group we created, over our own marker; the wave's group id from then on.

    If the marker changed meanwhile (our creation outlasted _CREATION_STALE and another worker took
    over), a group already recorded wins: ours is noted as an orphan, then deleted. With none
    recorded, ours is recorded and the other worker yields the same way.

    Raises:
        RetryableError: storage or Graph failed; the message comes back later (an orphan noted but
            not deleted yet is deleted by the next reader).
    """
    kv = deps.state.kv
    for _ in range(_RECORD_ATTEMPTS):
        try:
            record = {"groupId": group_id, "createdAt": iso(deps.clock())}
            await kv.put(WAVE_GROUPS_NAMESPACE, wave.name, record, if_match=etag, if_absent=etag is None)
            return group_id
        except ConcurrencyError:
            stored = await kv.get(WAVE_GROUPS_NAMESPACE, wave.name)
        value = _value(stored)
        recorded = value.get("groupId")
        if isinstance(recorded, str) and recorded != group_id and stored is not None:
            visible = await deps.graph.find_group_id(group_id=recorded, display_name=None)
            if visible is not None or _young(value, deps):
                orphans = [*value.get("orphans", []), group_id]
                try:
                    await kv.put(
                        WAVE_GROUPS_NAMESPACE, wave.name, {**value, "orphans": orphans}, if_match=stored.etag
                    )
                except ConcurrencyError:
                    etag = None
                    continue
                await _delete_orphans(
                    wave, await kv.get(WAVE_GROUPS_NAMESPACE, wave.name), deps, correlation_id
                )
                return recorded
        etag = stored.etag if stored is not None else None
    raise RetryableError(f"the group record of wave {wave.name} kept changing", retry_after=5)


class _Claim(NamedTuple):
    mine: bool  # this worker holds the creation marker and must create the group
    existing: str | None = None  # the group another worker has just created and recorded
    etag: str | None = None  # the version of our marker, when it is ours


async def _mark_creating(wave: Wave, deps: WaveGroupDeps) -> _Claim:
    """Take the creation marker so two workers never create two groups of the same name.

    Not ours when another worker holds a fresh marker, or has recorded a group that still exists
    (it may have finished between our look-up and this read: that group is the answer).

    Raises:
        RetryableError: a group recorded a moment ago is not visible yet; storage failed.
    """
    now = deps.clock()
    kv = deps.state.kv
    stored = await kv.get(WAVE_GROUPS_NAMESPACE, wave.name)
    marker = {"creatingSince": iso(now)}
    try:
        if stored is None:
            etag = await kv.put(WAVE_GROUPS_NAMESPACE, wave.name, marker, if_absent=True)
            return _Claim(mine=True, etag=etag)
        value = _value(stored)
        recorded = value.get("groupId")
        if isinstance(recorded, str):
            existing = await deps.graph.find_group_id(group_id=recorded, display_name=None)
            if existing is not None:
                return _Claim(mine=False, existing=existing)
            if _young(value, deps):
                raise RetryableError(f"the group of wave {wave.name} is not visible yet", retry_after=30)
        else:
            since = parse_iso(value.get("creatingSince"))
            if since is not None and now - since < _CREATION_STALE:
                return _Claim(mine=False)
        etag = await kv.put(WAVE_GROUPS_NAMESPACE, wave.name, marker, if_match=stored.etag)
    except ConcurrencyError:
        return _Claim(mine=False)
    return _Claim(mine=True, etag=etag)


async def _wait_for_other_creator(wave: Wave, deps: WaveGroupDeps, correlation_id: str) -> str:
    """The group id another worker is creating right now, once it records it (a few seconds).

    Raises:
        RetryableError: it did not appear in time; the message comes back later.
    """
    for _ in range(_CREATION_POLLS):
        await asyncio.sleep(_CREATION_POLL_SECONDS)
        created = await _recorded_group(wave, deps, correlation_id)
        if created is not None:
            return created
    raise RetryableError(f"another worker is creating the group of wave {wave.name}", retry_after=5)


def _value(stored: Versioned | None) -> dict[str, Any]:
    return dict(stored.value) if stored is not None and isinstance(stored.value, dict) else {}


def _young(value: dict[str, Any], deps: WaveGroupDeps) -> bool:
    created = parse_iso(value.get("createdAt"))
    return created is not None and deps.clock() - created < _REPLICATION_GRACE
