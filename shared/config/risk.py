"""Plan section ``risk``: Identity Protection and sign-in polling, what each signal is worth, responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.config.alerting import Matcher
from shared.config.base import ConfigModel

__all__ = [
    "DEFAULT_LEGACY_CLIENT_APPS",
    "AlertSeverity",
    "ResponseMode",
    "ResponseRule",
    "Risk",
    "RiskLevels",
    "RiskResponses",
    "WorkingHours",
]

ResponseMode = Literal["off", "dryRun", "on"]
AlertSeverity = Literal["critical", "high", "medium", "low", "info", "off"]

# auditLogs/signIns clientAppUsed values of protocols that cannot do MFA (Graph's documented values).
DEFAULT_LEGACY_CLIENT_APPS: tuple[str, ...] = (
    "Exchange ActiveSync",
    "IMAP4",
    "POP3",
    "Authenticated SMTP",
    "SMTP",
    "MAPI Over HTTP",
    "Other clients",
    "AutoDiscover",
    "Exchange Online PowerShell",
    "Exchange Web Services",
    "Offline Address Book",
    "Outlook Anywhere (RPC over HTTP)",
    "Reporting Web Services",
    "Universal Outlook",
)


class RiskLevels(ConfigModel):
    """The alert severity of each Identity Protection risk level (``off``: no alert)."""

    high: AlertSeverity = "critical"
    medium: AlertSeverity = "medium"  # delivered to PagerDuty as "warning"
    low: AlertSeverity = "off"


class WorkingHours(ConfigModel):
    """When sign-ins are expected (an unusual-pattern sign-in is one outside them)."""

    start_hour: Annotated[int, Field(ge=0, le=23)] = 7
    end_hour: Annotated[int, Field(ge=1, le=24)] = 19
    timezone: str = "UTC"
    days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4]  # Monday = 0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown IANA time zone {value!r} (e.g. Europe/London)", {"value": value}
            ) from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_hour <= self.start_hour:
            raise PydanticCustomError("working_hours", "endHour must be after startHour")
        return self


class ResponseRule(ConfigModel):
    """One automatic response: its mode and which alerts it answers (matchers on the alert's labels)."""

    mode: ResponseMode = "off"
    matchers: list[Matcher] = []

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [Matcher.parse(v) if isinstance(v, str) else v for v in value]
        return value


def _rule(default_matchers: list[str]) -> Any:
    def coerce(value: Any) -> Any:
        # ``revokeSessions: dryRun`` is short for the mode with the default matchers.
        if isinstance(value, str):
            return {"mode": value, "matchers": default_matchers}
        if isinstance(value, dict) and "matchers" not in value:
            return {**value, "matchers": default_matchers}
        return value

    return coerce


_REVOKE_DEFAULT = ["alertname=~UserAtRisk|UserCompromised|BreakGlassSignIn", "severity=critical"]
_CONFIRM_DEFAULT = ["alertname=UserAtRisk", "severity=critical"]


class RiskResponses(ConfigModel):
    """Automatic responses; destructive ones are off or dry-run unless configured.

    ``dryRun`` audits and shows what would have been done; ``on`` does it. Each applies to alerts whose
    labels match all of its matchers.
    """

    revoke_sessions: ResponseRule = ResponseRule(
        mode="dryRun", matchers=[Matcher.parse(m) for m in _REVOKE_DEFAULT]
    )
    confirm_compromised: ResponseRule = ResponseRule(
        mode="off", matchers=[Matcher.parse(m) for m in _CONFIRM_DEFAULT]
    )

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, defaults in (
            ("revokeSessions", _REVOKE_DEFAULT),
            ("revoke_sessions", _REVOKE_DEFAULT),
            ("confirmCompromised", _CONFIRM_DEFAULT),
            ("confirm_compromised", _CONFIRM_DEFAULT),
        ):
            if name in out:
                out[name] = _rule(defaults)(out[name])
        return out


class Risk(ConfigModel):
    """Polling of Identity Protection and the sign-in log, and what each signal raises."""

    poll_every_seconds: Annotated[int, Field(ge=10, le=86400)] = 300
    overlap_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    levels: RiskLevels = RiskLevels()
    legacy_client_apps: list[str] = list(DEFAULT_LEGACY_CLIENT_APPS)
    working_hours: WorkingHours = WorkingHours()
    triage_users_per_poll: Annotated[int, Field(ge=0, le=500)] = 50
    responses: RiskResponses = RiskResponses()
