"""Wave assignment at 100k users: the compiled selectors against a straightforward matcher.

``reference_assign`` is the straightforward reading of the plan (case-fold and strip every
selector of every wave for every user, as WaveGuard did before selectors were compiled); it is
also the specification the property test holds ``assign_wave`` to. Both assign the same
``USERS`` synthetic users (departments, countries, group memberships and UPNs drawn from the
example plan's selectors and beyond) against the example plan; best of five, the garbage
collector off while timing (as ``timeit``). Goal: the compiled
form ≥ 2.5 x faster.
"""

from __future__ import annotations

import gc
import json
import random
import time
from pathlib import Path
from typing import Final

from shared.config import RolloutPlan, Wave, is_guid, load_plan
from shared.rollout.assignment import Assignment, UserFacts, assign_wave

ROOT: Final = Path(__file__).resolve().parent.parent
USERS: Final = 100_000
GOAL: Final = 2.5
_ENV: Final = {
    "WAVEGUARD_HR_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "PAGERDUTY_ROUTING_KEY": "R0ut1ngKeyForBench00000000000000",
    "TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/teams",
    "WAVEGUARD_GRAPH_CLIENT_STATE": "bench-client-state",
}


def reference_assign(plan: RolloutPlan, facts: UserFacts) -> Assignment:
    """The plan read literally, selector by selector (``new_hire`` off): the specification."""
    if plan.break_glass.is_break_glass(user_id=facts.user_id, upn=facts.user_principal_name):
        return Assignment(None, "break-glass")
    for wave in plan.waves:
        if wave.catch_all:
            continue
        matched = _reference_selector(wave, facts)
        if matched is not None:
            return Assignment(wave.name, "selector", matched)
    catch_all = plan.catch_all_wave
    return Assignment(catch_all.name, "catch-all") if catch_all is not None else Assignment(None, "unmatched")


def _reference_selector(wave: Wave, facts: UserFacts) -> str | None:
    selectors = wave.selectors
    upn = (facts.user_principal_name or "").casefold()
    for user in selectors.users:
        if upn and user.casefold() == upn:
            return f"users={user}"
    for group in selectors.groups:
        if group.lower() in facts.group_ids if is_guid(group) else group.casefold() in facts.group_names:
            return f"groups={group}"
    department = (facts.department or "").strip().casefold()
    for name in selectors.departments:
        if department and name.strip().casefold() == department:
            return f"departments={name}"
    country = (facts.country or "").strip().upper()
    for code in selectors.countries:
        if country and code == country:
            return f"countries={code}"
    return None


def example_plan() -> RolloutPlan:
    return load_plan(ROOT / "config" / "waveguard.yaml", _ENV)


def synthetic_users(plan: RolloutPlan, count: int, *, seed: int = 7) -> list[UserFacts]:
    rng = random.Random(seed)
    departments = [d for w in plan.waves for d in w.selectors.departments] + ["Warehouse", " finance ", ""]
    countries = [c for w in plan.waves for c in w.selectors.countries] + ["FR", "US", ""]
    groups = [g for w in plan.waves for g in w.selectors.groups] + ["Some Other Group"]
    upns = [u for w in plan.waves for u in w.selectors.users]
    out = []
    for n in range(count):
        chosen = rng.sample(groups, k=min(len(groups), rng.randint(0, 2)))
        out.append(
            UserFacts.of(
                user_id=f"00000000-0000-0000-0000-{n:012d}",
                user_principal_name=rng.choice(upns).upper()
                if upns and rng.random() < 0.01
                else f"u{n}@contoso.com",
                department=rng.choice(departments),
                country=rng.choice(countries),
                groups=[(f"10000000-0000-0000-0000-{rng.randint(0, 9):012d}", name) for name in chosen],
            )
        )
    return out


def run() -> dict[str, float]:
    plan = example_plan()
    users = synthetic_users(plan, USERS)

    def best(assign: object) -> float:
        # As timeit does: the collector off while timing, so a collection of what earlier benches
        # in this process left on the heap is not charged to whichever matcher happens to run then.
        times = []
        for _ in range(5):
            gc.collect()
            gc.disable()
            try:
                began = time.perf_counter()
                for facts in users:
                    assign(plan, facts)  # type: ignore[operator]
                times.append(time.perf_counter() - began)
            finally:
                gc.enable()
        return min(times)

    reference, compiled = best(reference_assign), best(assign_wave)
    return {
        "users": float(USERS),
        "reference_s": round(reference, 3),
        "compiled_s": round(compiled, 3),
        "speedup": round(reference / compiled, 2),
        "goal": GOAL,
    }


def meets_targets(figures: dict[str, float]) -> bool:
    return figures["speedup"] >= GOAL


if __name__ == "__main__":
    print(json.dumps({"assignment_speed": run()}, indent=2), flush=True)
