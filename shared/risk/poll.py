"""One poll of every risk source, as the risk timer runs it.

1. **Due?** The timer may tick more often than ``risk.pollEverySeconds``; a poll runs when the last
   one (``risk-poll/_last``) is at least that old, else it returns at once.
2. **riskDetections** since the watermark minus the overlap (``$filter=detectedDateTime ge ...``),
   new ids only, folded per user into one ``UserAtRisk`` alert.
3. **riskyUsers** updated since then: still at risk → ``UserAtRisk``; confirmed compromised →
   ``UserCompromised``; remediated, dismissed or confirmed safe → their open alerts resolved.
4. **signIns** created since then: break-glass sign-ins, legacy-protocol sign-ins (alerted, and
   counted per wave and day in ``legacy-signins`` for wave planning, exactly once: the counts are
   written with the watermark as pending and then added, each wave's record naming the polls it
   holds) and unusual sign-ins; the
   countries each user signed in from are remembered (``signin-countries``).
5. Each alert is triaged (``triage``), answered (``responses``) and raised on ``alerts``; the
   watermarks are written after each source.

The first poll looks back one hour. Pages are as large as Graph allows (500 risk records, 999
sign-ins); Identity Protection calls are paced by the Graph port.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerting.model import SEVERITIES, Alert, raise_alert
from shared.alerting.router import ACTIVE_NAMESPACE, alert_id
from shared.config.plan import RolloutPlan
from shared.queues import Sender
from shared.risk import signals
from shared.risk.graph_port import GraphPort, iter_pages
from shared.risk.responses import ResponseDeps, respond
from shared.risk.triage import Triage, UserTriage
from shared.risk.watermarks import NAMESPACE, Watermark, clear_pending, read_watermark, write_watermark
from shared.state import AsyncStores, Clock, iso, parse_iso, utc_now
from shared.state.errors import ConcurrencyError

__all__ = ["COUNTRIES_NAMESPACE", "LEGACY_NAMESPACE", "PollReport", "RiskDeps", "run_risk_poll"]

log = logging.getLogger(__name__)

LEGACY_NAMESPACE: Final = "legacy-signins"
RAISED_NAMESPACE: Final = "risk-raised"
_TRACKED: Final = frozenset({"UserAtRisk", "UserCompromised"})
COUNTRIES_NAMESPACE: Final = "signin-countries"
FIRST_LOOK: Final = timedelta(hours=1)
MAX_SPAN: Final = timedelta(hours=1)
_LAST: Final = "_last"
_LEGACY_DAYS: Final = 30
_LEGACY_POLLS_KEPT: Final = 50  # poll ids each wave's count record remembers having added
_MAX_COUNTRIES: Final = 50
_RAISE_CONCURRENCY: Final = 8  # alerts raised (and triaged) at once: a storm is enqueued in seconds


@dataclass(frozen=True, slots=True)
class RiskDeps:
    """The plan, Graph (through the paced port), the stores, the queues and the clock."""

    plan: RolloutPlan
    port: GraphPort
    state: AsyncStores
    queues: Sender
    clock: Clock = utc_now


@dataclass(slots=True)
class PollReport:
    """What one poll read and raised."""

    ran: bool = True
    reason: str | None = None
    detections: int = 0
    risky_users: int = 0
    sign_ins: int = 0
    raised: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    untriaged: int = 0
    users_raised: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "reason": self.reason,
            "detections": self.detections,
            "riskyUsers": self.risky_users,
            "signIns": self.sign_ins,
            "raised": len(self.raised),
            "byAlertname": {n: self.raised.count(n) for n in sorted(set(self.raised))},
            "resolved": len(self.resolved),
            "untriaged": self.untriaged,
        }


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _slice_end(start: datetime, overlap: timedelta) -> datetime:
    """Where a poll's window ends at the latest: ``MAX_SPAN`` past the watermark. After an outage
    the backlog is read in slices (each small enough to page through whole), oldest first."""
    return start + 2 * overlap + MAX_SPAN


def _window(field: str, start: datetime, now: datetime, overlap: timedelta) -> str:
    end = _slice_end(start, overlap)
    if end >= now:
        return f"{field} ge {_z(start)}"
    return f"{field} ge {_z(start)} and {field} le {_z(end)}"


async def run_risk_poll(deps: RiskDeps, *, correlation_id: str, force: bool = False) -> PollReport:
    """Poll every source once (when due, or ``force``).

    Raises:
        SafetyViolationError: a break-glass account or the exclusion group does not exist.
        RetryableError: Graph or storage failed (the watermarks of finished sources are kept).
    """
    now = deps.clock()
    if not force and not await _due(deps, now):
        return PollReport(ran=False, reason="not due")
    risk = deps.plan.risk
    triage = Triage(deps.port, deps.plan, deps.state.kv, risk.triage_users_per_poll)
    await triage.break_glass_ids()
    await triage.waves_by_user()
    report = PollReport()
    overlap = timedelta(seconds=risk.overlap_seconds)
    await _detections(deps, triage, report, now, overlap, correlation_id)
    await _risky_users(deps, triage, report, now, overlap, correlation_id)
    await _sign_ins(deps, triage, report, now, overlap, correlation_id)
    report.untriaged = max(0, len(report.raised) - triage.used)
    log.info("risk poll done", extra={"correlation_id": correlation_id, **report.to_dict()})
    return report


async def _due(deps: RiskDeps, now: datetime) -> bool:
    stored = await deps.state.kv.get(NAMESPACE, _LAST)
    last = (
        parse_iso(stored.value.get("at")) if stored is not None and isinstance(stored.value, dict) else None
    )
    interval = timedelta(seconds=deps.plan.risk.poll_every_seconds)
    if last is not None and now - last < interval - timedelta(seconds=1):
        return False
    try:
        await deps.state.kv.put(
            NAMESPACE,
            _LAST,
            {"at": iso(now)},
            if_match=stored.etag if stored is not None else None,
            if_absent=stored is None,
        )
    except ConcurrencyError:
        return False  # another instance started this poll
    return True


async def _raise(
    deps: RiskDeps, report: PollReport, alert: Alert, who: UserTriage, correlation_id: str
) -> None:
    outcomes = await respond(
        ResponseDeps(deps.plan.risk.responses, deps.port, deps.state),
        alert,
        who,
        correlation_id=correlation_id,
    )
    if outcomes:
        alert = Alert(
            key=alert.key,
            severity=alert.severity,
            summary=alert.summary,
            source=alert.source,
            labels=alert.labels,
            details={**alert.details, "responses": outcomes},
            occurred_at=alert.occurred_at,
            status=alert.status,
        )
    if alert.labels.get("alertname") in _TRACKED:  # the poller resolves these itself later
        await deps.state.kv.put(
            RAISED_NAMESPACE, alert_id(alert.key), {"key": alert.key, "at": iso(deps.clock())}
        )
    await raise_alert(deps.queues, alert)
    if alert.status == "resolved":
        await deps.state.kv.delete(RAISED_NAMESPACE, alert_id(alert.key))
    (report.raised if alert.status == "firing" else report.resolved).append(
        str(alert.labels.get("alertname", alert.key))
    )


async def _detections(
    deps: RiskDeps, triage: Triage, report: PollReport, now: datetime, overlap: timedelta, correlation_id: str
) -> None:
    mark = await read_watermark(deps.state.kv, "riskDetections")
    start = mark.window_start(now, overlap, FIRST_LOOK)
    window = _window("detectedDateTime", start, now, overlap)
    path = f"/identityProtection/riskDetections?$filter={window}&$top=500"
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    upns: dict[str, str | None] = {}
    first_at: dict[str, datetime] = {}
    fresh: list[tuple[str, datetime]] = []
    async for item in iter_pages(deps.port, path):
        item_id, stamp, user_id = (
            str(item.get("id") or ""),
            parse_iso(item.get("detectedDateTime")),
            item.get("userId"),
        )
        if not item_id or stamp is None or not mark.is_new(item_id):
            continue
        fresh.append((item_id, stamp))
        if isinstance(user_id, str) and user_id:
            by_user[user_id.lower()].append(item)
            upns.setdefault(user_id.lower(), item.get("userPrincipalName"))
            first_at[user_id.lower()] = min(stamp, first_at.get(user_id.lower(), stamp))
    report.detections = len(fresh)
    gate = asyncio.Semaphore(_RAISE_CONCURRENCY)

    async def one(user_id: str, items: list[dict[str, Any]]) -> None:
        async with gate:
            who = await triage.user(user_id, upns.get(user_id))
            alert = signals.user_at_risk(deps.plan.risk.levels, who, items, now)
            if alert is not None:
                report.users_raised.add(user_id)
                await _raise(deps, report, alert, who, correlation_id)

    # oldest first (Graph lists the newest first): the detections that have waited longest for this
    # poll are triaged, raised and routed before the ones that have only just appeared
    oldest_first = sorted(by_user, key=lambda u: first_at[u])
    await asyncio.gather(*(one(u, by_user[u]) for u in oldest_first))
    await _advance(deps, mark, fresh, overlap, start, now)


async def _risky_users(
    deps: RiskDeps, triage: Triage, report: PollReport, now: datetime, overlap: timedelta, correlation_id: str
) -> None:
    mark = await read_watermark(deps.state.kv, "riskyUsers")
    start = mark.window_start(now, overlap, FIRST_LOOK)
    window = _window("riskLastUpdatedDateTime", start, now, overlap)
    path = f"/identityProtection/riskyUsers?$filter={window}&$top=500"
    fresh: list[tuple[str, datetime]] = []
    async for item in iter_pages(deps.port, path):
        user_id, stamp = str(item.get("id") or "").lower(), parse_iso(item.get("riskLastUpdatedDateTime"))
        if not user_id or stamp is None:
            continue
        change = f"{user_id}@{iso(stamp)}:{item.get('riskState')}"
        if not mark.is_new(change):
            continue
        fresh.append((change, stamp))
        who = await triage.user(user_id, item.get("userPrincipalName"))
        state = item.get("riskState")
        if state == "confirmedCompromised":
            await _raise(deps, report, signals.compromised_alert(who, item, now), who, correlation_id)
            await _resolve_if_open(
                deps, report, signals.user_key(user_id), "UserAtRisk", who, item, now, correlation_id
            )
        elif state in signals.RESOLVED_RISK_STATES:
            await _resolve_if_open(
                deps, report, signals.user_key(user_id), "UserAtRisk", who, item, now, correlation_id
            )
            await _resolve_if_open(
                deps,
                report,
                signals.compromised_key(user_id),
                "UserCompromised",
                who,
                item,
                now,
                correlation_id,
            )
        elif user_id not in report.users_raised:  # its detections already raised it, with more detail
            alert = signals.risky_user_alert(deps.plan.risk.levels, who, item, now)
            if alert is not None:
                await _raise(deps, report, alert, who, correlation_id)
    report.risky_users = len(fresh)
    await _advance(deps, mark, fresh, overlap, start, now)


async def _resolve_if_open(
    deps: RiskDeps,
    report: PollReport,
    key: str,
    alertname: str,
    who: UserTriage,
    risky: Mapping[str, Any],
    now: datetime,
    correlation_id: str,
) -> None:
    # The poller's own record of what it raised: the router may not have taken the firing alert in
    # yet, and a resolution must not be lost for that.
    if await deps.state.kv.get(RAISED_NAMESPACE, alert_id(key)) is None:
        return
    stored = await deps.state.kv.get(ACTIVE_NAMESPACE, alert_id(key))
    severity = stored.value.get("severity") if stored is not None and isinstance(stored.value, dict) else None
    # later than anything this poll raised (``now``): a firing and its resolution from one poll
    # never tie, whichever the router takes first
    resolved = signals.resolution(
        key,
        alertname,
        who,
        risky,
        max(now + timedelta(microseconds=1), deps.clock()),
        severity=severity if severity in SEVERITIES else "info",
    )
    await _raise(deps, report, resolved, who, correlation_id)


async def _sign_ins(
    deps: RiskDeps, triage: Triage, report: PollReport, now: datetime, overlap: timedelta, correlation_id: str
) -> None:
    risk = deps.plan.risk
    mark = await read_watermark(deps.state.kv, "signIns")
    await _apply_pending(deps, mark)  # a poll that died after its watermark, before its counts
    start = mark.window_start(now, overlap, FIRST_LOOK)
    path = f"/auditLogs/signIns?$filter={_window('createdDateTime', start, now, overlap)}&$top=999"
    ids = await triage.break_glass_ids()
    fresh: list[tuple[str, datetime]] = []
    legacy: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    countries: dict[str, set[str]] = defaultdict(set)
    async for item in iter_pages(deps.port, path):
        item_id, stamp, user_id = (
            str(item.get("id") or ""),
            parse_iso(item.get("createdDateTime")),
            item.get("userId"),
        )
        if not item_id or stamp is None or not mark.is_new(item_id) or not isinstance(user_id, str):
            continue
        fresh.append((item_id, stamp))
        user_id = user_id.lower()
        upn = item.get("userPrincipalName")
        succeeded = signals.succeeded(item)
        if user_id in ids.account_ids:
            who = await triage.user(user_id, upn)
            await _raise(deps, report, signals.break_glass_sign_in(who, item), who, correlation_id)
            continue
        if signals.is_legacy(risk, item):
            wave = (await triage.waves_by_user()).get(user_id, "unassigned")
            legacy[wave][str(item.get("clientAppUsed"))] += 1
            if succeeded:
                who = await triage.user(user_id, upn)
                await _raise(deps, report, signals.legacy_sign_in(who, item), who, correlation_id)
        if succeeded and signals.pattern_candidate(risk, item):
            who = await triage.user(user_id, upn)
            known = await _known_countries(deps, user_id) | (
                {who.usage_location} if who.usage_location else set()
            )
            alert = signals.unusual_sign_in(risk, who, item, known)
            if alert is not None:
                await _raise(deps, report, alert, who, correlation_id)
        country = signals.country(item)
        if succeeded and country:
            countries[user_id].add(country.upper())
    report.sign_ins = len(fresh)
    await _remember_countries(deps, countries)
    if legacy:  # counted exactly once: written with the watermark, then added (see _apply_pending)
        mark.pending = {
            "poll": uuid.uuid4().hex,  # names this application of the counts, whoever retries it
            "day": now.date().isoformat(),
            "legacy": {wave: dict(by_app) for wave, by_app in legacy.items()},
        }
    await _advance(deps, mark, fresh, overlap, start, now)
    await _apply_pending(deps, mark)


async def _apply_pending(deps: RiskDeps, mark: Watermark) -> None:
    pending = mark.pending
    if pending is None:
        return
    counts = pending.get("legacy")
    if isinstance(counts, dict):
        await _count_legacy(deps, counts, str(pending.get("poll") or ""), str(pending.get("day") or ""))
    await clear_pending(deps.state.kv, mark)


async def _known_countries(deps: RiskDeps, user_id: str) -> set[str]:
    stored = await deps.state.kv.get(COUNTRIES_NAMESPACE, user_id)
    value = stored.value if stored is not None and isinstance(stored.value, list) else []
    return {str(c) for c in value}


async def _remember_countries(deps: RiskDeps, countries: Mapping[str, set[str]]) -> None:
    for user_id, seen in countries.items():
        known = await _known_countries(deps, user_id)
        if not seen - known:
            continue
        await deps.state.kv.put(COUNTRIES_NAMESPACE, user_id, sorted(known | seen)[:_MAX_COUNTRIES])


async def _count_legacy(deps: RiskDeps, counts: Mapping[str, Any], poll: str, day: str) -> None:
    """Add one poll's legacy sign-ins to each wave's counts for ``day`` (the last 30 days kept),
    once: a wave's record names the polls it already holds."""
    try:
        horizon = (datetime.fromisoformat(day) - timedelta(days=_LEGACY_DAYS)).date().isoformat()
    except ValueError:
        log.warning("pending legacy counts with a bad day %r dropped", day)
        return
    for wave, by_app in counts.items():
        if not isinstance(by_app, dict):
            continue
        for _ in range(5):
            stored = await deps.state.kv.get(LEGACY_NAMESPACE, wave)
            value: dict[str, Any] = (
                dict(stored.value) if stored is not None and isinstance(stored.value, dict) else {}
            )
            polls = [str(p) for p in value.get("polls") or []]
            if poll and poll in polls:
                break  # this poll's counts are in already
            days = {
                d: dict(v)
                for d, v in (value.get("days") or {}).items()
                if d >= horizon and isinstance(v, dict)
            }
            today = days.setdefault(day, {})
            for app, count in by_app.items():
                today[app] = int(today.get(app, 0)) + int(count)
            try:
                await deps.state.kv.put(
                    LEGACY_NAMESPACE,
                    wave,
                    {
                        "wave": wave,
                        "days": days,
                        "updatedAt": iso(deps.clock()),
                        "polls": [*polls, poll][-_LEGACY_POLLS_KEPT:],
                    },
                    if_match=stored.etag if stored is not None else None,
                    if_absent=stored is None,
                )
                break
            except ConcurrencyError:
                continue
        else:  # the counts stay pending on the watermark: the next poll adds them
            raise ConcurrencyError(f"legacy counts of wave {wave} kept changing; retry")


async def _advance(
    deps: RiskDeps,
    mark: Watermark,
    fresh: list[tuple[str, datetime]],
    overlap: timedelta,
    start: datetime,
    now: datetime,
) -> None:
    for item_id, stamp in fresh:
        mark.mark(item_id, stamp)
    # The window was read whole up to its end (now, or a capped slice's end): the next read starts
    # no earlier than an overlap before that end, records or not, so a quiet source or a long
    # outage never leaves the watermark behind (and a record listed late by up to twice the
    # overlap is still found).
    floor = min(_slice_end(start, overlap), now) - overlap
    if mark.at is None or mark.at < floor:
        mark.at = floor
    await write_watermark(deps.state.kv, mark, overlap)
