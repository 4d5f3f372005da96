"""A rollout's history for the report tests: what the timer, the CLI and permfa would have stored.

The wave names carry a token so tests sharing one Azurite never see each other's waves; the
snapshots go through the production writer (``write_daily_snapshots``) from evaluated decisions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from shared.alerting.model import Alert
from shared.alerting.open_alerts import open_alert
from shared.config import APP_ROOT, RolloutPlan, load_plan
from shared.report.snapshots import write_daily_snapshots
from shared.rollout.lifecycle.evaluate import Action, EvaluationResult, WaveDecision
from shared.rollout.lifecycle.gates import GateResult
from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import AsyncStores, AuditEntry
from tests.conftest import PLAN_SECRETS

# A wave description written to break out of the page if anything were left unescaped.
HOSTILE = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> & 'quotes'"
HISTORY_DAYS = 20


@dataclass(frozen=True, slots=True)
class Seeded:
    plan: RolloutPlan
    pilot: str
    second: str
    now: datetime


def report_plan(path: Path, token: str, *, description: str = HOSTILE) -> Path:
    """The example plan with every wave renamed ``<token>-<name>``, the pilot's description hostile."""
    data: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    )
    renames = {w["name"]: f"{token}-{w['name']}" for w in data["waves"]}
    for wave in data["waves"]:
        wave["name"] = renames[wave["name"]]
    data["waves"][0]["description"] = description
    hires = data.get("newHires") or {}
    for key in ("wave", "fallbackWave"):
        if hires.get(key) in renames:
            hires[key] = renames[hires[key]]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_report_plan(path: Path, token: str, *, description: str = HOSTILE) -> RolloutPlan:
    return load_plan(report_plan(path, token, description=description), PLAN_SECRETS)


def _decision(
    wave: str,
    state: WaveState,
    since: datetime | None,
    *,
    members: int,
    registered: int,
    failure: float | None,
    sign_ins: int,
    critical: int = 0,
) -> WaveDecision:
    rate = registered / members if members else 0.0
    detail = (
        f"{round((failure or 0) * sign_ins)}/{sign_ins} report-only sign-ins would have failed"
        if failure is not None
        else f"{sign_ins} report-only sign-ins, 50 needed as evidence"
    )
    gates = [
        GateResult(
            "registration", rate >= 0.95, round(rate, 4), 0.95, f"{registered}/{members} members registered"
        ),
        GateResult("report-only-impact", failure is not None and failure <= 0.02, failure, 0.02, detail),
        GateResult("soak", False, None, 7, "soaking"),
        GateResult("no-critical-alerts", critical == 0, critical, 0, "alerts"),
    ]
    return WaveDecision(wave, state, since, Action.HOLD, "", gates, members, registered, False)


async def seed_history(stores: AsyncStores, plan: RolloutPlan, *, now: datetime) -> Seeded:
    """Twenty days of a rollout: the pilot registering, report-only, then enforced; the second wave
    started two days ago; an open critical alert; a saved per-user MFA report."""
    pilot, second = plan.waves[0].name, plan.waves[1].name
    start = now - timedelta(days=HISTORY_DAYS)
    registering, report_only, enforced = (start + timedelta(days=d, hours=9) for d in (1, 9, 17))
    second_start = now - timedelta(days=2, hours=3)
    transitions = [
        (pilot, registering, WaveState.PLANNED, WaveState.REGISTERING, "first wave"),
        (pilot, report_only, WaveState.REGISTERING, WaveState.REPORT_ONLY, "45/47 members registered"),
        (pilot, enforced, WaveState.REPORT_ONLY, WaveState.ENFORCED, "every gate passed; approved"),
        (second, second_start, WaveState.PLANNED, WaveState.REGISTERING, "previous wave enforced"),
    ]
    for wave, at, before, after, reason in transitions:
        details = {"from": before.value, "to": after.value}
        entry = AuditEntry("wave-timer", "wave.transition", wave, reason, "seed", details, at=at)
        await stores.audit.append(entry)
    approval = AuditEntry(
        "cli:alice",
        "wave.approve",
        pilot,
        "pilot <b>signed off</b>",
        "seed",
        {"state": "report-only"},
        at=enforced - timedelta(hours=5),
    )
    await stores.audit.append(approval)
    await write_wave_state(stores.kv, pilot, WaveState.ENFORCED, enforced)
    await write_wave_state(stores.kv, second, WaveState.REGISTERING, second_start)
    for day in range(HISTORY_DAYS + 1):
        if day == 6:  # a day the timer did not run: a gap, not a zero
            continue
        at = start + timedelta(days=day, hours=23, minutes=45)
        if at > now:
            at = now
        decisions = []
        if at >= registering:
            state = (
                WaveState.ENFORCED
                if at >= enforced
                else WaveState.REPORT_ONLY
                if at >= report_only
                else WaveState.REGISTERING
            )
            since = enforced if at >= enforced else report_only if at >= report_only else registering
            registered = min(47, 8 + 5 * day)
            in_report_only = at >= report_only
            failure = (0.06 - 0.005 * (day - 9)) if in_report_only and day >= 11 else None
            decisions.append(
                _decision(
                    pilot,
                    state,
                    since,
                    members=47,
                    registered=registered,
                    failure=round(max(failure, 0.0), 4) if failure is not None else None,
                    sign_ins=20 * max(0, day - 9),
                )
            )
        if at >= second_start:
            decisions.append(
                _decision(
                    second,
                    WaveState.REGISTERING,
                    second_start,
                    members=30,
                    registered=4,
                    failure=None,
                    sign_ins=0,
                    critical=1,
                )
            )
        await write_daily_snapshots(stores.kv, EvaluationResult(decisions, dry_run=False), now=at)
    alert = Alert(
        key="membership:blast-radius",
        severity="critical",
        source="wave-work",
        summary="Blast radius exceeded: <b>120</b> changes > 100 & held",
    )
    await open_alert(stores.kv, second, alert, alert_id="alert-seed-1", now=lambda: second_start)
    saved = {
        "at": (now - timedelta(hours=2)).isoformat(),
        "waves": [
            {
                "wave": pilot,
                "waveState": "enforced",
                "caEnforced": True,
                "groupId": "g-1",
                "members": 47,
                "states": {"disabled": 40, "enabled": 5, "enforced": 2, "unknown": 0},
                "dependOnPerUserMfa": 0,
                "readyToMove": 7,
            },
            {
                "wave": second,
                "waveState": "registering",
                "caEnforced": False,
                "groupId": "g-2",
                "members": 30,
                "states": {"disabled": 27, "enabled": 3, "enforced": 0, "unknown": 0},
                "dependOnPerUserMfa": 3,
                "readyToMove": 0,
            },
        ],
        "breakGlass": [],
    }
    await stores.kv.put(PERMFA_NAMESPACE, REPORT_KEY, saved)
    return Seeded(plan, pilot, second, now)
