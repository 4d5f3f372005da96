"""Automatic responses to risk alerts: revoke sign-in sessions, confirm compromised.

Opt-in per rule in the plan (``risk.responses``): each has a mode (``off``, ``dryRun`` — the
default for revoking — or ``on``) and matchers on the alert's labels. Every decision is audited
and listed in the alert's ``details.responses``, so the on-call engineer sees what was done (or
would have been). A break-glass account is never touched automatically (audited as refused):
revoking its sessions in an emergency could lock out the people fixing it. Each real response is
claimed once per incident (``risk-response:<action>:<user>:<digest of the alert key and its
detections>``), so a poll that runs twice revokes once, and a new compromise a day later revokes
again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from shared.alerting.model import Alert
from shared.config.risk import ResponseRule, RiskResponses
from shared.errors import WaveGuardError
from shared.risk.graph_port import GraphPort
from shared.risk.triage import UserTriage
from shared.state import AsyncStores, AuditEntry
from shared.state.once import once

__all__ = ["ACTIONS", "ResponseDeps", "respond"]

ACTOR: Final = "waveguard/risk-response"
_TTL: Final = timedelta(days=7)
_CLAIM: Final = timedelta(minutes=2)


def _revoke(user_id: str) -> tuple[str, Any]:
    return f"/users/{user_id}/revokeSignInSessions", None


def _confirm(user_id: str) -> tuple[str, Any]:
    return "/identityProtection/riskyUsers/confirmCompromised", {"userIds": [user_id]}


# action name -> (plan rule attribute, what it does in words, the Graph call)
ACTIONS: Final[dict[str, tuple[str, str, Callable[[str], tuple[str, Any]]]]] = {
    "revokeSessions": ("revoke_sessions", "revoke every sign-in session and refresh token", _revoke),
    "confirmCompromised": (
        "confirm_compromised",
        "confirm the user compromised in Identity Protection",
        _confirm,
    ),
}


@dataclass(frozen=True, slots=True)
class ResponseDeps:
    """The plan's response rules, Graph, the stores."""

    rules: RiskResponses
    port: GraphPort
    state: AsyncStores


async def respond(
    deps: ResponseDeps, alert: Alert, who: UserTriage, *, correlation_id: str
) -> list[dict[str, Any]]:
    """Apply every response whose rule matches ``alert``; what each did (for ``details.responses``)."""
    if alert.status != "firing":
        return []
    labels = alert.routing_labels()
    outcomes: list[dict[str, Any]] = []
    for action, (attribute, words, call) in ACTIONS.items():
        rule: ResponseRule = getattr(deps.rules, attribute)
        if rule.mode == "off" or not all(m.matches(labels) for m in rule.matchers):
            continue
        if who.break_glass:
            result, detail = "refused", "never automatic on a break-glass account"
        elif rule.mode == "dryRun":
            result, detail = "dryRun", f"would {words} (risk.responses is dryRun)"
        else:
            result, detail = await _do(deps, action, call, who, alert, correlation_id)
        outcomes.append({"action": action, "mode": rule.mode, "result": result, "detail": detail})
        await deps.state.audit.append(
            AuditEntry(
                ACTOR,
                f"risk.response.{action}",
                who.user_id,
                f"{result}: {detail}"[:500],
                correlation_id=correlation_id,
                details={"alertKey": alert.key, "mode": rule.mode, "result": result},
            )
        )
    return outcomes


def _incident(alert: Alert) -> str:
    """What makes this alert a new incident for the user: its detections, else the risky-user
    update, else when it happened (a re-raise of the same detections is the same incident)."""
    detections = alert.details.get("detections")
    if isinstance(detections, list) and detections:
        return ",".join(sorted(str(d.get("id")) for d in detections if isinstance(d, dict)))
    risky = alert.details.get("riskyUser")
    if isinstance(risky, dict) and risky.get("riskLastUpdatedDateTime"):
        return str(risky["riskLastUpdatedDateTime"])
    return alert.occurred_at.isoformat()


async def _do(
    deps: ResponseDeps,
    action: str,
    call: Callable[[str], tuple[str, Any]],
    who: UserTriage,
    alert: Alert,
    correlation_id: str,
) -> tuple[str, str]:
    digest = hashlib.sha256(f"{alert.key}\n{_incident(alert)}".encode()).hexdigest()[:16]
    path, body = call(who.user_id)
    try:
        async with once(
            deps.state.idempotency,
            f"risk-response:{action}:{who.user_id}:{digest}",
            ttl=_TTL,
            in_progress_expiry=_CLAIM,
            when_busy="skip",
            correlation_id=correlation_id,
        ) as run:
            if run.done or run.skipped:
                return "done", "already done for this alert"
            await deps.port.post(path, body if body is not None else {})
    except WaveGuardError as exc:
        return "failed", f"Graph refused or failed: {exc.message}"[:300]
    return "done", f"{action} done"
