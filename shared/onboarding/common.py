"""Steps shared by the hire, update and termination use cases: find the person, the wave group."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from shared.config import Wave
from shared.errors import PermanentError, RetryableError, SafetyViolationError
from shared.hr.events import HrEvent
from shared.onboarding.deps import Deps, run_sync
from shared.onboarding.ports import DirectoryUser
from shared.rollout.assignment import UserFacts
from shared.state import ConcurrencyError

__all__ = [
    "CLAIM_TTL",
    "LEAVERS_NAMESPACE",
    "REGISTRATION_NAMESPACE",
    "WAVE_GROUPS_NAMESPACE",
    "ensure_wave_group",
    "facts_for",
    "find_employee",
    "iso",
    "left_since",
    "parse_iso",
    "record_leaver",
    "refuse_break_glass",
]

REGISTRATION_NAMESPACE: Final = "registration"
# Terminations by employee (key: "employee-<id>" / "upn-<upn>"): a hire still waiting for
# provisioning must not issue a TAP to someone who has left since.
LEAVERS_NAMESPACE: Final = "leavers"
WAVE_GROUPS_NAMESPACE: Final = "wave-groups"
# How long a processed envelope id is remembered: longer than any redelivery or replay.
CLAIM_TTL: Final = timedelta(days=30)
# A wave-group creation marker older than this was left by a worker that died.
_CREATION_STALE: Final = timedelta(minutes=2)
_CREATION_POLLS: Final = 40
_CREATION_POLL_SECONDS: Final = 0.25
_RECORD_ATTEMPTS: Final = 3


def iso(moment: datetime) -> str:
    """ISO-8601 text for state records."""
    return moment.isoformat()


def parse_iso(text: object) -> datetime | None:
    """A datetime from ``iso`` text, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


async def find_employee(event: HrEvent, deps: Deps) -> DirectoryUser | None:
    """The Entra user the event is about: by employeeId, else by userPrincipalName.

    Raises:
        RetryableError: Graph throttled or failed.
        PermanentError: Graph refused the read, or several users share the employeeId.
    """
    data = event.data
    if data.employee_id:
        user = await deps.graph.find_user_by_employee_id(data.employee_id)
        if user is not None:
            return user
    if data.user_principal_name:
        return await deps.graph.find_user(data.user_principal_name)
    return None


def _leaver_keys(event: HrEvent) -> list[str]:
    data = event.data
    keys = [f"employee-{data.employee_id}"] if data.employee_id else []
    if data.user_principal_name:
        keys.append(f"upn-{data.user_principal_name.casefold()}")
    return keys


async def record_leaver(event: HrEvent, envelope_id: str, deps: Deps) -> None:
    """Remember that this employee left at the event's time (for hires still in flight).

    Raises:
        RetryableError: the store is unavailable.
    """
    for key in _leaver_keys(event):
        value = {"terminatedAt": iso(event.timestamp), "envelopeId": envelope_id}
        await run_sync(deps.state.kv.put, LEAVERS_NAMESPACE, key, value)


async def left_since(event: HrEvent, deps: Deps) -> bool:
    """True when HR terminated this employee at or after the hire event's time.

    Raises:
        RetryableError: the store is unavailable.
    """
    for key in _leaver_keys(event):
        stored = await run_sync(deps.state.kv.get, LEAVERS_NAMESPACE, key)
        value: Any = stored.value if stored is not None else None
        left_at = parse_iso(value.get("terminatedAt")) if isinstance(value, dict) else None
        if left_at is not None and left_at >= event.timestamp:
            return True
    return False


def refuse_break_glass(user: DirectoryUser, deps: Deps, correlation_id: str) -> None:
    """Stop before any write to a break-glass account.

    Raises:
        SafetyViolationError: the user is a configured break-glass account.
    """
    if deps.plan.break_glass.is_break_glass(user_id=user.id, upn=user.user_principal_name):
        raise SafetyViolationError(
            "an HR event names a break-glass account; WaveGuard never changes it",
            rule="break-glass-never-targeted",
            correlation_id=correlation_id,
            user_id=user.id,
        )


async def facts_for(
    user: DirectoryUser, event: HrEvent, deps: Deps
) -> tuple[UserFacts, list[tuple[str, str | None]]]:
    """Assignment facts (HR's newer department/country first, then Entra's) and the user's groups.

    Raises:
        RetryableError: Graph throttled or failed.
    """
    groups = await deps.graph.member_of(user.id)
    facts = UserFacts.of(
        user_id=user.id,
        user_principal_name=user.user_principal_name,
        department=event.data.department or user.department,
        country=event.data.country or user.country,
        groups=groups,
    )
    return facts, groups


async def ensure_wave_group(wave: Wave, deps: Deps, correlation_id: str) -> str:
    """The id of the wave's target group, creating it as a security group if the plan names one
    that does not exist yet (by displayName; a configured id that is missing is a config error).

    Raises:
        PermanentError: the configured group id does not exist.
        RetryableError: Graph or storage failed, or another worker is creating the group now.
    """
    ref = wave.group
    found = await deps.graph.find_group_id(group_id=ref.id, display_name=ref.display_name)
    if found is not None:
        return found
    if ref.id is not None or not ref.display_name:
        raise PermanentError(
            f"wave {wave.name}: target group {ref.id} does not exist; fix waves[].group in the plan",
            correlation_id=correlation_id,
            wave=wave.name,
        )
    created = await _created_before(wave, deps)
    if created is not None:
        return created  # created by us; Graph's directory replication may not list it by name yet
    claim = await _mark_creating(wave, deps)
    if claim.existing is not None:
        return claim.existing  # another worker finished creating it a moment ago
    if not claim.mine:
        return await _wait_for_other_creator(wave, deps)
    group_id = await deps.graph.create_security_group(
        ref.display_name,
        description=f"WaveGuard rollout wave '{wave.name}': the Conditional Access target group. "
        "Membership is managed by WaveGuard.",
    )
    await deps.audit(
        "wave.group.create", group_id, f"target group of wave {wave.name} did not exist", correlation_id,
        wave=wave.name,
    )  # fmt: skip
    return await _record_created(wave, group_id, claim.etag, deps, correlation_id)


async def _record_created(
    wave: Wave, group_id: str, etag: str | None, deps: Deps, correlation_id: str
) -> str:
    """Record the group we created, over our own marker; the wave's group id from then on.

    If the marker changed meanwhile (our creation outlasted _CREATION_STALE and another worker took
    over), the group already recorded wins and ours, to which we added nobody, is deleted; with
    none recorded, ours is recorded and the other worker yields the same way.

    Raises:
        RetryableError: storage or Graph failed; the message comes back later.
    """
    kv = deps.state.kv
    for _ in range(_RECORD_ATTEMPTS):
        try:
            record = {"groupId": group_id, "createdAt": iso(deps.clock())}
            await run_sync(
                kv.put, WAVE_GROUPS_NAMESPACE, wave.name, record, if_match=etag, if_absent=etag is None
            )
            return group_id
        except ConcurrencyError:
            stored = await run_sync(kv.get, WAVE_GROUPS_NAMESPACE, wave.name)
        value: Any = stored.value if stored is not None and isinstance(stored.value, dict) else {}
        recorded = value.get("groupId")
        if isinstance(recorded, str) and recorded != group_id:
            winner = await deps.graph.find_group_id(group_id=recorded, display_name=None)
            if winner is not None:
                await deps.graph.delete_group(group_id)
                reason = f"another worker created the target group of wave {wave.name} at the same time"
                await deps.audit(
                    "wave.group.delete", group_id, reason, correlation_id, wave=wave.name, kept=winner
                )
                return winner
        etag = stored.etag if stored is not None else None
    raise RetryableError(f"the group record of wave {wave.name} kept changing", retry_after=5)


async def _created_before(wave: Wave, deps: Deps) -> str | None:
    """The group we created for this wave earlier, if it still exists (someone may have deleted it)."""
    stored = await run_sync(deps.state.kv.get, WAVE_GROUPS_NAMESPACE, wave.name)
    value: Any = stored.value if stored is not None else None
    if not (isinstance(value, dict) and isinstance(value.get("groupId"), str)):
        return None
    return await deps.graph.find_group_id(group_id=str(value["groupId"]), display_name=None)


class _Claim(NamedTuple):
    mine: bool  # this worker holds the creation marker and must create the group
    existing: str | None = None  # the group another worker has just created and recorded
    etag: str | None = None  # the version of our marker, when it is ours


async def _mark_creating(wave: Wave, deps: Deps) -> _Claim:
    """Take the creation marker so two workers never create two groups of the same name.

    Not ours when another worker holds a fresh marker, or has recorded a group that still exists
    (it may have finished between our look-up and this read: that group is the answer).
    """
    now = deps.clock()
    kv = deps.state.kv
    stored = await run_sync(kv.get, WAVE_GROUPS_NAMESPACE, wave.name)
    marker = {"creatingSince": iso(now)}
    try:
        if stored is None:
            etag = await run_sync(kv.put, WAVE_GROUPS_NAMESPACE, wave.name, marker, if_absent=True)
            return _Claim(mine=True, etag=etag)
        value: Any = stored.value if isinstance(stored.value, dict) else {}
        recorded = value.get("groupId")
        if isinstance(recorded, str):
            existing = await deps.graph.find_group_id(group_id=recorded, display_name=None)
            if existing is not None:
                return _Claim(mine=False, existing=existing)
        else:
            since = parse_iso(value.get("creatingSince"))
            if since is not None and now - since < _CREATION_STALE:
                return _Claim(mine=False)
        etag = await run_sync(kv.put, WAVE_GROUPS_NAMESPACE, wave.name, marker, if_match=stored.etag)
    except ConcurrencyError:
        return _Claim(mine=False)
    return _Claim(mine=True, etag=etag)


async def _wait_for_other_creator(wave: Wave, deps: Deps) -> str:
    """The group id another worker is creating right now, once it records it (a few seconds).

    Raises:
        RetryableError: it did not appear in time; the message comes back later.
    """
    for _ in range(_CREATION_POLLS):
        await asyncio.sleep(_CREATION_POLL_SECONDS)
        created = await _created_before(wave, deps)
        if created is not None:
            return created
    raise RetryableError(f"another worker is creating the group of wave {wave.name}", retry_after=5)
