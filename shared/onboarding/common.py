"""Steps shared by the hire, update and termination use cases: find the person, the wave group."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Final

from shared.envelope import Envelope
from shared.errors import SafetyViolationError
from shared.hr.events import HrEvent
from shared.onboarding.deps import Deps
from shared.onboarding.ports import DirectoryUser
from shared.rollout.assignment import UserFacts
from shared.rollout.wave_groups import WAVE_GROUPS_NAMESPACE
from shared.state import iso, parse_iso
from shared.state.errors import ConcurrencyError
from shared.state.once import Run, once

__all__ = [
    "CLAIM_TTL",
    "LEAVERS_NAMESPACE",
    "ONBOARDING_KEY_PREFIX",
    "REGISTRATION_NAMESPACE",
    "WAVE_GROUPS_NAMESPACE",
    "facts_for",
    "find_employee",
    "iso",
    "left_since",
    "once_per_envelope",
    "parse_iso",
    "record_leaver",
    "refuse_break_glass",
]

REGISTRATION_NAMESPACE: Final = "registration"
# Terminations by employee (key: "employee-<id>" / "upn-<upn>"): a hire still waiting for
# provisioning must not issue a TAP to someone who has left since.
LEAVERS_NAMESPACE: Final = "leavers"
_LEAVER_ATTEMPTS: Final = 5
# How long a processed envelope id is remembered: longer than any redelivery or replay.
CLAIM_TTL: Final = timedelta(days=30)
# The claim of an HR envelope (``onboarding:<envelope id>``); a hire's progress is checkpointed on it.
ONBOARDING_KEY_PREFIX: Final = "onboarding:"


def once_per_envelope(envelope: Envelope, deps: Deps, *, doing: str) -> AbstractAsyncContextManager[Run]:
    """``once`` for one HR envelope: a hire or an update is applied once per ``onboarding:<id>``."""
    return once(
        deps.state.idempotency,
        f"{ONBOARDING_KEY_PREFIX}{envelope.id}",
        ttl=CLAIM_TTL,
        busy_message=f"another worker is {doing}",
        correlation_id=envelope.id,
    )


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
        for _ in range(_LEAVER_ATTEMPTS):
            stored = await deps.state.kv.get(LEAVERS_NAMESPACE, key)
            known = stored.value if stored is not None and isinstance(stored.value, dict) else {}
            recorded = parse_iso(known.get("terminatedAt"))
            if recorded is not None and recorded >= event.timestamp:
                break  # a later (or this) termination is recorded: a late one never pulls it back
            try:
                await deps.state.kv.put(
                    LEAVERS_NAMESPACE,
                    key,
                    value,
                    if_match=stored.etag if stored is not None else None,
                    if_absent=stored is None,
                )
                break
            except ConcurrencyError:
                continue
        else:
            raise ConcurrencyError(
                f"leaver record {key} kept changing; retry", namespace=LEAVERS_NAMESPACE, key=key
            )


async def left_since(event: HrEvent, deps: Deps) -> bool:
    """True when HR terminated this employee at or after the hire event's time.

    Raises:
        RetryableError: the store is unavailable.
    """
    keys = _leaver_keys(event)
    if not keys:
        return False
    found = await deps.state.kv.get_many(LEAVERS_NAMESPACE, keys)  # both keys in one read
    for stored in found.values():
        value: Any = stored.value
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
    user: DirectoryUser, event: HrEvent, deps: Deps, *, groups: list[tuple[str, str | None]] | None = None
) -> tuple[UserFacts, list[tuple[str, str | None]]]:
    """Assignment facts (HR's newer department/country first, then Entra's) and the user's groups
    (``groups`` when the caller read them already).

    Raises:
        RetryableError: Graph throttled or failed.
    """
    if groups is None:
        groups = await deps.graph.member_of(user.id)
    facts = UserFacts.of(
        user_id=user.id,
        user_principal_name=user.user_principal_name,
        department=event.data.department or user.department,
        country=event.data.country or user.country,
        groups=groups,
    )
    return facts, groups
