"""``employee.updated``: re-evaluate the wave; move the user without ever lowering protection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.config import Wave
from shared.envelope import Envelope
from shared.errors import NotFoundError
from shared.hr.events import HrEvent
from shared.onboarding.common import (
    REGISTRATION_NAMESPACE,
    facts_for,
    find_employee,
    once_per_envelope,
    refuse_break_glass,
)
from shared.onboarding.deps import Deps
from shared.rollout.assignment import assign_wave
from shared.rollout.wave_groups import ensure_wave_group
from shared.rollout.wave_state import read_wave_state

__all__ = ["UpdateOutcome", "handle_updated"]


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What the update changed: the wave now, and the waves the user was kept in or removed from."""

    status: Literal["unchanged", "moved", "duplicate"]
    user_id: str | None = None
    wave: str | None = None
    removed_from: tuple[str, ...] = ()
    kept_in: tuple[str, ...] = ()


async def handle_updated(envelope: Envelope, event: HrEvent, deps: Deps) -> UpdateOutcome:
    """Apply an HR change to the user's wave once for ``envelope.id``.

    Raises:
        NotFoundError: the user does not exist in Entra.
        SafetyViolationError: the event names a break-glass account.
        RetryableError: Graph or storage failed, or another worker holds this envelope.
    """
    async with once_per_envelope(envelope, deps, doing="applying this update") as run:
        if run.done:
            return UpdateOutcome("duplicate", user_id=run.result.get("userId"))
        outcome = await _apply(envelope, event, deps)
        await run.complete({"userId": outcome.user_id, "wave": outcome.wave})
        return outcome


def _current_waves(deps: Deps, groups: list[tuple[str, str | None]]) -> list[tuple[Wave, str]]:
    """The plan's waves whose target group the user is in, with that group's id."""
    found: list[tuple[Wave, str]] = []
    for wave in deps.plan.waves:
        for group_id, name in groups:
            by_id = wave.group.id is not None and wave.group.id == group_id.lower()
            by_name = (
                wave.group.id is None
                and (wave.group.display_name or "").casefold() == (name or "").casefold()
            )
            if by_id or by_name:
                found.append((wave, group_id))
                break
    return found


async def _apply(envelope: Envelope, event: HrEvent, deps: Deps) -> UpdateOutcome:
    user = await find_employee(event, deps)
    if user is None:
        raise NotFoundError("updated employee not found in Entra", correlation_id=envelope.id)
    refuse_break_glass(user, deps, envelope.id)
    facts, groups = await facts_for(user, event, deps)
    assignment = assign_wave(deps.plan, facts)
    current = _current_waves(deps, groups)
    if assignment.wave is None or [w.name for w, _ in current] == [assignment.wave]:
        return UpdateOutcome("unchanged", user_id=user.id, wave=assignment.wave)
    target = deps.plan.wave(assignment.wave)
    group_id = await ensure_wave_group(target, deps, envelope.id)
    if await deps.graph.add_member(group_id, user.id):
        reason = f"HR change: wave {target.name} ({assignment.reason} {assignment.selector or ''})".strip()
        await deps.audit("wave.member.add", user.id, reason, envelope.id, wave=target.name, group_id=group_id)
    target_state = await read_wave_state(deps.state.kv, target.name)
    removed: list[str] = []
    kept: list[str] = []
    for wave, old_group in current:
        if wave.name == target.name:
            continue
        old_state = await read_wave_state(deps.state.kv, wave.name)
        if old_state.enforced and not target_state.enforced:
            kept.append(wave.name)
            await deps.audit(
                "wave.member.keep",
                user.id,
                f"stays in enforced wave {wave.name}: never lower protection",
                envelope.id,
                wave=wave.name,
                new_wave=target.name,
            )
            continue
        if await deps.graph.remove_member(old_group, user.id):
            await deps.audit(
                "wave.member.remove",
                user.id,
                f"moved to wave {target.name}",
                envelope.id,
                wave=wave.name,
                group_id=old_group,
            )
        removed.append(wave.name)
    await _retarget_registration(user.id, target.name, deps)
    return UpdateOutcome(
        "moved", user_id=user.id, wave=target.name, removed_from=tuple(removed), kept_in=tuple(kept)
    )


async def _retarget_registration(user_id: str, wave: str, deps: Deps) -> None:
    stored = await deps.state.kv.get(REGISTRATION_NAMESPACE, user_id)
    if stored is not None and isinstance(stored.value, dict) and stored.value.get("wave") != wave:
        await deps.state.kv.put(
            REGISTRATION_NAMESPACE,
            user_id,
            {**stored.value, "wave": wave},
            if_match=stored.etag,
        )
