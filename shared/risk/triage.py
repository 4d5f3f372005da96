"""Who a risk signal is about: display name, department, wave and its state, MFA, admin roles, break-glass.

Bounded Graph reads with a short cache: at most ``budget`` users are read per poll (three GETs
each: the user, its authentication methods, its directory roles), and what was read is kept five
minutes in this process. Which wave a user is in comes from the wave groups' member lists, read
whole (999 per page) at most every five minutes, so every signal gets its ``wave`` label. Beyond the
budget (a storm), an alert still carries what costs nothing: the user id and UPN from the signal,
the wave, whether it is a break-glass account, and ``triaged: false``. Break-glass ids are resolved
once per poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, cast

from shared.errors import WaveGuardError
from shared.risk.graph_port import GraphPort, iter_pages
from shared.rollout.wave_state import read_wave_state
from shared.state import AsyncKeyValuePort

if TYPE_CHECKING:
    from shared.config.plan import RolloutPlan
    from shared.graph.guard import BreakGlassIds

__all__ = ["CACHE_SECONDS", "Triage", "UserTriage"]

CACHE_SECONDS: Final = 300.0
# Methods that prove nothing about who holds the account (password, e-mail for SSPR, a TAP).
_WEAK_METHODS: Final = frozenset(
    {
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.emailAuthenticationMethod",
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    }
)
WAVES_CACHE_SECONDS: Final = 300.0
_cache: dict[str, tuple[float, UserTriage]] = {}
_waves_cache: dict[str, tuple[float, dict[str, str]]] = {}


@dataclass(frozen=True, slots=True)
class UserTriage:
    """What an on-call engineer wants to know about the user an alert is about."""

    user_id: str
    user_principal_name: str | None = None
    display_name: str | None = None
    department: str | None = None
    usage_location: str | None = None
    wave: str | None = None
    wave_state: str | None = None
    mfa_registered: bool | None = None
    admin_roles: tuple[str, ...] = ()
    break_glass: bool = False
    triaged: bool = False

    def labels(self) -> dict[str, str]:
        """Routing labels (absent facts are left out, so ``wave!=""`` style matchers work)."""
        out = {"breakGlass": str(self.break_glass).lower()}
        if self.user_principal_name:
            out["user"] = self.user_principal_name.lower()
        if self.wave:
            out["wave"] = self.wave
        if self.wave_state:
            out["waveState"] = self.wave_state
        if self.department:
            out["department"] = self.department[:128]
        if self.triaged:
            out["mfaRegistered"] = (
                "unknown" if self.mfa_registered is None else str(self.mfa_registered).lower()
            )
            out["admin"] = str(bool(self.admin_roles)).lower()
        return out

    def details(self) -> dict[str, Any]:
        """The alert's triage details."""
        return {
            "userId": self.user_id,
            "userPrincipalName": self.user_principal_name,
            "displayName": self.display_name,
            "department": self.department,
            "wave": self.wave,
            "waveState": self.wave_state,
            "mfaRegistered": self.mfa_registered,
            "adminRoles": list(self.admin_roles),
            "breakGlass": self.break_glass,
            "triaged": self.triaged,
        }


@dataclass(slots=True)
class Triage:
    """Triage for one poll: ``budget`` fresh user reads at most, a process-wide 5-minute cache."""

    port: GraphPort
    plan: RolloutPlan
    kv: AsyncKeyValuePort
    budget: int
    monotonic: Any = time.monotonic
    used: int = 0
    _break_glass: BreakGlassIds | None = None
    _wave_states: dict[str, str] = field(default_factory=dict)

    async def break_glass_ids(self) -> BreakGlassIds:
        """The break-glass accounts and exclusion group as ids (read once per poll).

        Raises:
            SafetyViolationError: an account or the exclusion group does not exist.
            RetryableError: Graph could not be reached.
        """
        if self._break_glass is None:
            from shared.graph.guard import resolve_break_glass_ids

            self._break_glass = await resolve_break_glass_ids(self.plan.break_glass, self.port.get)
        return self._break_glass

    async def user(self, user_id: str, upn: str | None = None) -> UserTriage:
        """The user's triage: cached, freshly read while the budget lasts, else the cheap facts only."""
        key = user_id.lower()
        ids = await self.break_glass_ids()
        waves = await self.waves_by_user()
        break_glass = key in ids.account_ids
        # a break-glass account is in no wave by design: a stale membership read never labels it so
        cheap = UserTriage(key, upn, wave=None if break_glass else waves.get(key), break_glass=break_glass)
        cached = _cache.get(key)
        if cached is not None and self.monotonic() - cached[0] < CACHE_SECONDS:
            return await self._with_wave_state(replace(cached[1], wave=cheap.wave))
        if self.used >= self.budget:
            return await self._with_wave_state(cheap)
        self.used += 1
        try:
            read = await self._read(key, cheap)
        except WaveGuardError:
            return await self._with_wave_state(cheap)  # best effort: the alert goes out without it
        _cache[key] = (self.monotonic(), read)
        return await self._with_wave_state(read)

    async def waves_by_user(self) -> dict[str, str]:
        """User id → the first wave (in plan order) whose group has them as a member."""
        key = "|".join(f"{w.name}={w.group.id or w.group.display_name}" for w in self.plan.waves)
        cached = _waves_cache.get(key)
        if cached is not None and self.monotonic() - cached[0] < WAVES_CACHE_SECONDS:
            return cached[1]
        members: dict[str, str] = {}
        for wave in self.plan.waves:
            group_id = await self._group_id(wave.group.id, wave.group.display_name)
            if group_id is None:
                continue
            path = f"/groups/{group_id}/members?$select=id&$top=999"
            async for member in iter_pages(self.port, path):
                members.setdefault(str(member.get("id", "")).lower(), wave.name)
        _waves_cache[key] = (self.monotonic(), members)
        return members

    async def _group_id(self, group_id: object, display_name: str | None) -> str | None:
        if group_id:
            return str(group_id)
        if not display_name:
            return None
        literal = display_name.replace("'", "''")
        page = await self.port.get(f"/groups?$filter=displayName eq '{literal}'&$select=id")
        found = [g for g in (page or {}).get("value", []) if isinstance(g, dict)]
        return str(found[0]["id"]) if len(found) == 1 else None

    async def _read(self, user_id: str, cheap: UserTriage) -> UserTriage:
        # the three reads at once: a triage costs one Graph round trip of latency, not three (every
        # one is awaited before the first failure is raised, so none is left running)
        answers = await asyncio.gather(
            self.port.get(
                f"/users/{user_id}?$select=id,displayName,userPrincipalName,department,usageLocation"
            ),
            _all(self.port, f"/users/{user_id}/authentication/methods"),
            _all(
                self.port,
                f"/users/{user_id}/transitiveMemberOf/microsoft.graph.directoryRole?$select=displayName",
            ),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        user, methods, roles = cast(
            "tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]", answers
        )
        if user is None:
            return replace(cheap, triaged=True)
        return replace(
            cheap,
            user_principal_name=_text(user, "userPrincipalName") or cheap.user_principal_name,
            display_name=_text(user, "displayName"),
            department=_text(user, "department"),
            usage_location=_text(user, "usageLocation"),
            mfa_registered=any(m.get("@odata.type") not in _WEAK_METHODS for m in methods),
            admin_roles=tuple(str(r.get("displayName") or r.get("id")) for r in roles),
            triaged=True,
        )

    async def _with_wave_state(self, triage: UserTriage) -> UserTriage:
        if triage.wave is None:
            return triage
        if triage.wave not in self._wave_states:
            self._wave_states[triage.wave] = (await read_wave_state(self.kv, triage.wave)).state.value
        return replace(triage, wave_state=self._wave_states[triage.wave])


async def _all(port: GraphPort, path: str) -> list[dict[str, Any]]:
    return [item async for item in iter_pages(port, path)]


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


def clear_cache() -> None:
    """Forget every cached triage and wave membership (tests)."""
    _cache.clear()
    _waves_cache.clear()
