"""Each block or risk pair's own report-only period, per wave.

A wave-driven pair in ``render.SOAKED_PAIRS`` (sign-in risk, user risk, allowed countries) takes a
wave's group into its enforcing policy only once that group has been in the pair's report-only twin
for the wave's ``gates.minSoakDays``. When the group first went into the twin is recorded by the
apply (KV namespace ``policy-soak``, key ``<pair>:<wave>``, value ``since`` and the twin's policy
id): a record made for another twin (the option was turned off and on again, the twin recreated)
does not count. A wave promoted later soaks the same way, from when its group first entered the
twin (usually its registering phase, so it has soaked by the time its MFA is enforced).

While a soak is running, the apply asks the rollout timer to sync the baseline again (the
``wave-sync`` ``baseline`` marker, with ``soakDue``); ``sync_baseline`` answers such a marker from the
store alone until the soak is due, then syncs for real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.config import RolloutPlan
from shared.rollout.policies.render import POLICY_TITLES, SOAKED_PAIRS, DesiredPolicy
from shared.rollout.policies.templates import PolicyBody
from shared.rollout.wave_state import WaveState
from shared.state import AsyncKeyValuePort, ConcurrencyError

__all__ = ["SOAK_NAMESPACE", "Soak", "SoakStatus", "read_soak", "record_soak"]

SOAK_NAMESPACE: Final = "policy-soak"


@dataclass(frozen=True, slots=True)
class Soak:
    """One wave held in a pair's twin although the wave is enforced, and until when."""

    pair: str
    wave: str
    since: datetime | None  # None: its group goes into the twin with this apply
    due: datetime

    def __str__(self) -> str:
        started = f"since {self.since:%Y-%m-%d %H:%M}" if self.since else "from this apply"
        return (
            f"{POLICY_TITLES[self.pair]}: wave {self.wave} is enforced but stays in the report-only twin "
            f"({started}) until {self.due:%Y-%m-%d %H:%M} UTC (gates.minSoakDays)"
        )


@dataclass(frozen=True, slots=True)
class SoakStatus:
    """Per pair, when each wave's group first went into the live twin."""

    since: Mapping[tuple[str, str], datetime]
    now: datetime

    def soaked(self, plan: RolloutPlan) -> dict[str, frozenset[str]]:
        """Per pair, the waves whose soak is complete (``render_policies(soaked=...)``)."""
        done: dict[str, set[str]] = {pair: set() for pair in SOAKED_PAIRS}
        for (pair, wave), since in self.since.items():
            if since + _soak_days(plan, wave) <= self.now:
                done[pair].add(wave)
        return {pair: frozenset(waves) for pair, waves in done.items()}

    def running(
        self, plan: RolloutPlan, desired: Sequence[DesiredPolicy], states: Mapping[str, WaveState]
    ) -> tuple[Soak, ...]:
        """The enforced waves the rendered twins still hold, each with when its soak is due."""
        soaks: list[Soak] = []
        for policy in desired:
            pair = policy.key.removesuffix("-report-only")
            if pair == policy.key or pair not in SOAKED_PAIRS:
                continue
            for wave in policy.groups_by_wave:
                if states.get(wave) is not WaveState.ENFORCED:
                    continue
                since = self.since.get((pair, wave))
                soaks.append(Soak(pair, wave, since, (since or self.now) + _soak_days(plan, wave)))
        return tuple(soaks)


def _soak_days(plan: RolloutPlan, wave: str) -> timedelta:
    try:
        return timedelta(days=plan.wave(wave).gates.min_soak_days)
    except KeyError:
        return timedelta(days=max((w.gates.min_soak_days for w in plan.waves), default=0))


def _key(pair: str, wave: str) -> str:
    return f"{pair}:{wave}"


def _twin_ids(plan: RolloutPlan, live: Sequence[PolicyBody]) -> dict[str, str]:
    prefix = plan.policies.name_prefix
    by_name = {str(p.get("displayName") or "").casefold(): str(p.get("id") or "") for p in live}
    ids: dict[str, str] = {}
    for pair in SOAKED_PAIRS:
        policy_id = by_name.get((prefix + POLICY_TITLES[f"{pair}-report-only"]).casefold())
        if policy_id:
            ids[pair] = policy_id
    return ids


async def read_soak(
    kv: AsyncKeyValuePort, plan: RolloutPlan, live: Sequence[PolicyBody], *, now: datetime
) -> SoakStatus:
    """The soak records of the live twins (one read per pair with a live twin).

    Raises:
        RetryableError: the store could not be reached.
    """
    since: dict[tuple[str, str], datetime] = {}
    for pair, twin_id in sorted(_twin_ids(plan, live).items()):
        keys = [_key(pair, wave.name) for wave in plan.waves]
        for key, record in (await kv.get_many(SOAK_NAMESPACE, keys)).items():
            value = record.value if isinstance(record.value, Mapping) else {}
            if str(value.get("twinId") or "") != twin_id or not value.get("since"):
                continue  # recorded for another twin: the soak starts again
            with contextlib.suppress(ValueError):
                since[(pair, key.split(":", 1)[1])] = datetime.fromisoformat(str(value["since"]))
    return SoakStatus(since, now)


async def record_soak(
    kv: AsyncKeyValuePort,
    desired: Sequence[DesiredPolicy],
    twin_ids: Mapping[str, str],
    *,
    now: datetime,
    correlation_id: str | None,
) -> None:
    """After an apply: remember when each wave's group first went into each soaked pair's twin
    (``twin_ids``: the twins' policy ids by display name, casefolded). The first sighting wins.

    Raises:
        RetryableError: the store could not be reached.
    """
    for policy in desired:
        pair = policy.key.removesuffix("-report-only")
        twin_id = twin_ids.get(policy.name.casefold())
        if pair == policy.key or pair not in SOAKED_PAIRS or not twin_id:
            continue
        for wave, group_id in sorted(policy.groups_by_wave.items()):
            stored = await kv.get(SOAK_NAMESPACE, _key(pair, wave))
            value: Any = stored.value if stored is not None else None
            if isinstance(value, Mapping) and str(value.get("twinId") or "") == twin_id:
                continue
            record = {
                "since": now.isoformat(),
                "twinId": twin_id,
                "groupId": group_id,
                "correlationId": correlation_id,
            }
            with contextlib.suppress(ConcurrencyError):  # another run recorded it first: theirs stands
                if stored is None:
                    await kv.put(SOAK_NAMESPACE, _key(pair, wave), record, if_absent=True)
                else:
                    await kv.put(SOAK_NAMESPACE, _key(pair, wave), record, if_match=stored.etag)
