"""What each risk signal is worth as an alert: pure functions from Graph's records to ``Alert``s.

- ``UserAtRisk`` (key ``risk:user:<id>``): a user's new ``riskDetections`` in one poll, or a risky
  user still ``atRisk``; severity from the plan's ``risk.levels`` (high → critical, medium → medium,
  i.e. PagerDuty "warning", low → none by default). Resolved when Identity Protection says the risk
  is remediated, dismissed or confirmed safe.
- ``UserCompromised`` (critical, key ``risk:compromised:<id>``): a risky user confirmed compromised.
- ``BreakGlassSignIn`` (critical, one per sign-in): any sign-in, successful or not, by a
  break-glass account.
- ``LegacyAuthSignIn`` (medium, one per user and protocol per dedupe period): a successful sign-in
  over a protocol that cannot do MFA (``clientAppUsed`` in ``risk.legacyClientApps``).
- ``UnusualSignIn`` (high, one per sign-in): a successful sign-in from an unmanaged device, from a
  country the user has not signed in from (their usage location counts as known), outside working
  hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from shared.alerting.model import Alert, Severity
from shared.config.risk import AlertSeverity, Risk, RiskLevels, WorkingHours
from shared.risk.triage import UserTriage

__all__ = [
    "ACTOR",
    "RESOLVED_RISK_STATES",
    "break_glass_sign_in",
    "compromised_alert",
    "is_legacy",
    "legacy_sign_in",
    "outside_working_hours",
    "severity_of",
    "unusual_sign_in",
    "user_at_risk",
    "user_key",
]

ACTOR: Final = "waveguard/risk"
RESOLVED_RISK_STATES: Final = frozenset({"remediated", "dismissed", "confirmedSafe", "none"})
_LEVEL_ORDER: Final = ("critical", "high", "medium", "low", "info")
_SHOWN: Final = 10


def user_key(user_id: str) -> str:
    return f"risk:user:{user_id.lower()}"


def compromised_key(user_id: str) -> str:
    return f"risk:compromised:{user_id.lower()}"


def severity_of(levels: RiskLevels, risk_level: object) -> Severity | None:
    """The alert severity for an Identity Protection ``riskLevel`` (None: not alerted)."""
    mapped: AlertSeverity | None = (
        getattr(levels, str(risk_level), None)
        if risk_level
        in (
            "high",
            "medium",
            "low",
        )
        else None
    )
    return None if mapped in (None, "off") else mapped  # type: ignore[return-value]


def _worst(severities: Iterable[Severity]) -> Severity:
    return min(severities, key=_LEVEL_ORDER.index)


def _who(who: UserTriage) -> str:
    name = who.display_name or who.user_principal_name or who.user_id
    parts = [f"{name} ({who.user_principal_name})" if who.display_name and who.user_principal_name else name]
    if who.department:
        parts.append(who.department)
    if who.wave:
        parts.append(f"wave {who.wave}" + (f" ({who.wave_state})" if who.wave_state else ""))
    if who.break_glass:
        parts.append("BREAK-GLASS ACCOUNT")
    return ", ".join(parts)


def _base_labels(alertname: str, severity: Severity, who: UserTriage) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, **who.labels()}


def user_at_risk(
    levels: RiskLevels, who: UserTriage, detections: Sequence[Mapping[str, Any]], now: datetime
) -> Alert | None:
    """One ``UserAtRisk`` alert for a user's new detections (None when no level is alerted)."""
    rated = [(d, severity_of(levels, d.get("riskLevel"))) for d in detections]
    alerted = [(d, s) for d, s in rated if s is not None]
    if not alerted:
        return None
    severity = _worst(s for _, s in alerted)
    kinds = sorted({str(d.get("riskEventType") or "unknown") for d, _ in alerted})
    first = alerted[0][0]
    where = _location(first)
    level = str(first.get("riskLevel"))
    summary = f"{level.capitalize()} sign-in risk for {_who(who)}: {', '.join(kinds)}" + (
        f" from {where}" if where else ""
    )
    return Alert(
        key=user_key(who.user_id),
        severity=severity,
        summary=summary[:1000],
        source=ACTOR,
        labels={**_base_labels("UserAtRisk", severity, who), "riskLevel": level, "riskEventType": kinds[0]},
        details={
            **who.details(),
            "detections": [_detection(d) for d, _ in alerted[:_SHOWN]],
            "detectionCount": len(alerted),
        },
        occurred_at=now,
    )


def risky_user_alert(
    levels: RiskLevels, who: UserTriage, risky: Mapping[str, Any], now: datetime
) -> Alert | None:
    """``UserAtRisk`` from a risky user still at risk (its aggregate level), else None."""
    severity = severity_of(levels, risky.get("riskLevel"))
    if risky.get("riskState") != "atRisk" or severity is None:
        return None
    level = str(risky.get("riskLevel"))
    return Alert(
        key=user_key(who.user_id),
        severity=severity,
        summary=f"{_who(who)} is at {level} risk{_detail(risky)}"[:1000],
        source=ACTOR,
        labels={**_base_labels("UserAtRisk", severity, who), "riskLevel": level},
        details={**who.details(), "riskyUser": _risky(risky)},
        occurred_at=now,
    )


def compromised_alert(who: UserTriage, risky: Mapping[str, Any], now: datetime) -> Alert:
    """``UserCompromised`` (critical): an administrator confirmed the user compromised."""
    return Alert(
        key=compromised_key(who.user_id),
        severity="critical",
        summary=f"{_who(who)} is confirmed compromised"[:1000],
        source=ACTOR,
        labels={**_base_labels("UserCompromised", "critical", who), "riskLevel": "high"},
        details={**who.details(), "riskyUser": _risky(risky)},
        occurred_at=now,
    )


def resolution(
    alert_key: str,
    alertname: str,
    who: UserTriage,
    risky: Mapping[str, Any],
    now: datetime,
    severity: Severity = "info",
) -> Alert:
    """The resolution of a user's risk alert (Identity Protection no longer sees the user at risk)."""
    state = str(risky.get("riskState") or "none")
    return Alert(
        key=alert_key,
        severity=severity,
        summary=f"{_who(who)}: risk {state}"[:1000],
        source=ACTOR,
        labels={"alertname": alertname, **who.labels()},
        details={**who.details(), "riskyUser": _risky(risky)},
        occurred_at=now,
        status="resolved",
    )


def break_glass_sign_in(who: UserTriage, sign_in: Mapping[str, Any]) -> Alert:
    """``BreakGlassSignIn`` (critical): every use of a break-glass account is looked at by a person."""
    ok = succeeded(sign_in)
    app = sign_in.get("appDisplayName") or "an app"
    summary = (
        f"Break-glass account {who.user_principal_name or who.user_id} "
        f"{'signed in to' if ok else 'failed to sign in to'} {app}"
        f" from {sign_in.get('ipAddress') or 'an unknown address'}"
        + (f" ({_location(sign_in)})" if _location(sign_in) else "")
    )
    return Alert(
        key=f"signin:break-glass:{sign_in.get('id')}",
        severity="critical",
        summary=summary[:1000],
        source=ACTOR,
        labels={
            **_base_labels("BreakGlassSignIn", "critical", who),
            "signInResult": "success" if ok else "failure",
        },
        details={**who.details(), "signIn": _sign_in(sign_in)},
        occurred_at=_stamp(sign_in),
    )


def is_legacy(risk: Risk, sign_in: Mapping[str, Any]) -> bool:
    """Whether the sign-in used a protocol that cannot do MFA."""
    used = str(sign_in.get("clientAppUsed") or "")
    return used.casefold() in {c.casefold() for c in risk.legacy_client_apps}


def legacy_sign_in(who: UserTriage, sign_in: Mapping[str, Any]) -> Alert:
    """``LegacyAuthSignIn`` (medium): MFA cannot protect this user while the protocol is in use."""
    used = str(sign_in.get("clientAppUsed"))
    return Alert(
        key=f"signin:legacy:{who.user_id}:{used.casefold()}",
        severity="medium",
        summary=f"{_who(who)} signed in over legacy protocol {used} (no MFA possible)"[:1000],
        source=ACTOR,
        labels={**_base_labels("LegacyAuthSignIn", "medium", who), "clientApp": used},
        details={**who.details(), "signIn": _sign_in(sign_in)},
        occurred_at=_stamp(sign_in),
    )


def pattern_candidate(risk: Risk, sign_in: Mapping[str, Any]) -> bool:
    """Cheap half of the unusual-sign-in test: unmanaged device and outside working hours."""
    device = _obj(sign_in, "deviceDetail")
    unmanaged = not bool(device.get("isManaged")) and not bool(device.get("isCompliant"))
    return unmanaged and outside_working_hours(risk.working_hours, _stamp(sign_in))


def outside_working_hours(hours: WorkingHours, when: datetime) -> bool:
    local = when.astimezone(ZoneInfo(hours.timezone))
    return local.weekday() not in hours.days or not (hours.start_hour <= local.hour < hours.end_hour)


def unusual_sign_in(
    risk: Risk, who: UserTriage, sign_in: Mapping[str, Any], known_countries: Iterable[str]
) -> Alert | None:
    """``UnusualSignIn`` (high): unmanaged device, new country, outside working hours — all three."""
    if not succeeded(sign_in):
        return None
    device = _obj(sign_in, "deviceDetail")
    unmanaged = not bool(device.get("isManaged")) and not bool(device.get("isCompliant"))
    where = country(sign_in)
    known = {c.upper() for c in known_countries if c}
    new_country = bool(where) and bool(known) and where.upper() not in known
    stamp = _stamp(sign_in)
    if not (unmanaged and new_country and outside_working_hours(risk.working_hours, stamp)):
        return None
    local = stamp.astimezone(ZoneInfo(risk.working_hours.timezone))
    summary = (
        f"Unusual sign-in for {_who(who)}: unmanaged device, first sign-in from {where} "
        f"(known: {', '.join(sorted(known))}), at {local:%a %H:%M} {risk.working_hours.timezone}"
    )
    return Alert(
        key=f"signin:unusual:{sign_in.get('id')}",
        severity="high",
        summary=summary[:1000],
        source=ACTOR,
        labels={**_base_labels("UnusualSignIn", "high", who), "country": where},
        details={**who.details(), "signIn": _sign_in(sign_in), "knownCountries": sorted(known)},
        occurred_at=stamp,
    )


def _detail(risky: Mapping[str, Any]) -> str:
    detail = risky.get("riskDetail")
    return f" ({detail})" if isinstance(detail, str) and detail not in ("", "none", "hidden") else ""


def _obj(item: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = item.get(name)
    return value if isinstance(value, dict) else {}


def succeeded(sign_in: Mapping[str, Any]) -> bool:
    status = _obj(sign_in, "status")
    return status.get("errorCode") in (0, None)


def country(item: Mapping[str, Any]) -> str:
    location = _obj(item, "location")
    return str(location.get("countryOrRegion") or "")


def _location(item: Mapping[str, Any]) -> str:
    location = _obj(item, "location")
    parts = [location.get("city"), location.get("countryOrRegion")]
    return ", ".join(str(p) for p in parts if p)


def _stamp(sign_in: Mapping[str, Any]) -> datetime:
    from shared.state import parse_iso, utc_now

    return parse_iso(sign_in.get("createdDateTime")) or utc_now()


def _detection(d: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "riskEventType",
        "riskLevel",
        "riskState",
        "detectedDateTime",
        "ipAddress",
        "source",
        "activity",
    )
    return {**{k: d.get(k) for k in keys}, "location": _location(d)}


def _risky(r: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "riskLevel", "riskState", "riskDetail", "riskLastUpdatedDateTime")
    return {k: r.get(k) for k in keys}


def _sign_in(s: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "createdDateTime",
        "appDisplayName",
        "clientAppUsed",
        "ipAddress",
        "conditionalAccessStatus",
    )
    device = _obj(s, "deviceDetail")
    status = _obj(s, "status")
    return {
        **{k: s.get(k) for k in keys},
        "location": _location(s),
        "deviceManaged": device.get("isManaged"),
        "errorCode": status.get("errorCode"),
    }
