"""Can this tenant take WaveGuard's Conditional Access rollout? Checked before any policy write.

Three reads (concurrent, raw JSON):

- ``GET /policies/identitySecurityDefaultsEnforcementPolicy``: security defaults and Conditional
  Access policies cannot coexist, so while they are on WaveGuard writes no policy;
- ``GET /subscribedSkus``: Conditional Access needs Microsoft Entra ID P1 (service plan
  ``AAD_PREMIUM``); risk-based signals (Identity Protection's risk detections and risky users)
  need P2 (``AAD_PREMIUM_P2``);
- ``GET /policies/authenticationMethodsPolicy``: Microsoft Authenticator (what users register)
  and the Temporary Access Pass (what new hires start with) must be enabled for the users.

Each finding says what was found, what a missing piece blocks and what to do. Only the first two
block ``policies apply``; an unreadable answer is reported, never guessed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shared.errors import WaveGuardError

__all__ = [
    "AUTH_METHODS_PATH",
    "SECURITY_DEFAULTS_PATH",
    "SKUS_PATH",
    "Preflight",
    "PreflightFinding",
    "tenant_preflight",
]

SECURITY_DEFAULTS_PATH: Final = "/policies/identitySecurityDefaultsEnforcementPolicy"
SKUS_PATH: Final = "/subscribedSkus?$select=skuPartNumber,capabilityStatus,servicePlans"
AUTH_METHODS_PATH: Final = "/policies/authenticationMethodsPolicy"
P1_PLANS: Final = frozenset({"AAD_PREMIUM", "AAD_PREMIUM_P2"})  # P2 includes P1
P2_PLANS: Final = frozenset({"AAD_PREMIUM_P2"})
# Service plan states that mean the plan can be used (Graph's provisioningStatus values).
_USABLE: Final = frozenset({"Success", "PendingActivation", "PendingProvisioning"})
ALL_USERS: Final = "all_users"

Read = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class PreflightFinding:
    """One check of the tenant: ``blocking`` findings stop ``policies apply``."""

    check: str
    ok: bool
    detail: str
    blocks: str = ""
    fix: str = ""
    blocking: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "blocking": self.blocking,
            "detail": self.detail,
            "blocks": self.blocks,
            "fix": self.fix,
        }

    def __str__(self) -> str:
        text = f"{self.check}: {self.detail}"
        if not self.ok and self.blocks:
            text += f"; blocks {self.blocks}"
        if not self.ok and self.fix:
            text += f". Fix: {self.fix}"
        return text


@dataclass(frozen=True, slots=True)
class Preflight:
    """Every finding, in a fixed order (security defaults, licences, authentication methods)."""

    findings: tuple[PreflightFinding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def blocking(self) -> tuple[PreflightFinding, ...]:
        return tuple(f for f in self.findings if f.blocking)

    @property
    def licence_p2(self) -> bool | None:
        """Whether the tenant has Entra ID P2 (risk-based conditions); None when not known (the
        licences could not be read, or no preflight ran)."""
        finding = next((f for f in self.findings if f.check == "licence-p2"), None)
        return None if finding is None else finding.ok

    @property
    def licence_unreadable(self) -> str | None:
        """Why the licences could not be read (a missing LicenseAssignment.Read.All, usually), or None."""
        finding = next((f for f in self.findings if f.check == "licence"), None)
        return None if finding is None or finding.ok else finding.detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocking": [f.check for f in self.blocking],
            "findings": [f.to_dict() for f in self.findings],
        }


async def tenant_preflight(read: Read) -> Preflight:
    """Read the three tenant settings concurrently and judge them.

    ``read`` is a raw JSON GET (None on 404) such as ``shared.graph.client.get_json`` bound to a
    client. A read that fails is a finding naming the error (a 403 usually means a permission is
    missing), never an exception.
    """
    answers = await asyncio.gather(
        _attempt(read, SECURITY_DEFAULTS_PATH),
        _attempt(read, SKUS_PATH),
        _attempt(read, AUTH_METHODS_PATH),
    )
    defaults, skus, methods = answers
    return Preflight(
        (
            _security_defaults(defaults),
            *_licences(skus),
            *_auth_methods(methods),
        )
    )


async def _attempt(read: Read, path: str) -> dict[str, Any] | str:
    """The answer, or a line saying why it could not be read."""
    try:
        answer = await read(path)
    except WaveGuardError as exc:
        return f"could not read {path.split('?')[0]}: {exc.message}"
    if answer is None:
        return f"could not read {path.split('?')[0]}: not found"
    return answer


def _unreadable(check: str, why: str, blocks: str, permission: str) -> PreflightFinding:
    return PreflightFinding(
        check,
        ok=False,
        detail=why,
        blocks=f"knowing whether {blocks}",
        fix=f"grant WaveGuard's identity {permission} (docs/permissions.md), then run doctor again",
    )


def _security_defaults(answer: dict[str, Any] | str) -> PreflightFinding:
    if isinstance(answer, str):
        return _unreadable("security-defaults", answer, "Conditional Access can be used", "Policy.Read.All")
    if answer.get("isEnabled") is True:
        return PreflightFinding(
            "security-defaults",
            ok=False,
            blocking=True,
            detail="security defaults are on",
            blocks="every Conditional Access policy: Entra refuses to create one while they are on",
            fix="in the Microsoft Entra admin center, Identity > Overview > Properties > Manage security "
            "defaults: set them to Disabled (choose 'My organization is planning to use Conditional "
            "Access'), then run `waveguard policies apply` at once: WaveGuard's baseline starts "
            "report-only, so switch them off only when you are ready to apply it",
        )
    return PreflightFinding("security-defaults", ok=True, detail="security defaults are off")


def _usable_plans(answer: Mapping[str, Any]) -> set[str]:
    plans: set[str] = set()
    for sku in _objects(answer.get("value")):
        if sku.get("capabilityStatus") not in {"Enabled", "Warning"}:
            continue  # Suspended, Deleted, LockedOut: the licence no longer works
        for plan in _objects(sku.get("servicePlans")):
            if plan.get("provisioningStatus") in _USABLE and isinstance(plan.get("servicePlanName"), str):
                plans.add(str(plan["servicePlanName"]))
    return plans


def _licences(answer: dict[str, Any] | str) -> tuple[PreflightFinding, ...]:
    if isinstance(answer, str):
        return (_unreadable("licence", answer, "the tenant is licensed", "LicenseAssignment.Read.All"),)
    plans = _usable_plans(answer)
    if not plans & P1_PLANS:
        p1 = PreflightFinding(
            "licence-p1",
            ok=False,
            blocking=True,
            detail="no Microsoft Entra ID P1 (or P2) licence in the tenant",
            blocks="every Conditional Access policy (Entra ID P1 is the licence for Conditional Access)",
            fix="buy or activate Entra ID P1 (alone, or in Microsoft 365 E3/E5, Business Premium or "
            "EMS) for the users the waves cover",
        )
    else:
        p1 = PreflightFinding("licence-p1", ok=True, detail="Microsoft Entra ID P1 available")
    if plans & P2_PLANS:
        return (p1, PreflightFinding("licence-p2", ok=True, detail="Microsoft Entra ID P2 available"))
    p2 = PreflightFinding(
        "licence-p2",
        ok=False,
        detail="no Microsoft Entra ID P2 licence",
        blocks="Identity Protection's risk detections and risky users (the risk timer's UserAtRisk and "
        "UserCompromised alerts; its sign-in log signals still work) and sign-in or user risk "
        "conditions in Conditional Access",
        fix="license Entra ID P2 (alone or in Microsoft 365 E5 / EMS E5) for the users the waves cover",
    )
    return (p1, p2)


def _objects(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _method(answer: Mapping[str, Any], method_id: str) -> Mapping[str, Any] | None:
    configurations = _objects(answer.get("authenticationMethodConfigurations"))
    return next((c for c in configurations if str(c.get("id", "")).lower() == method_id.lower()), None)


def _auth_methods(answer: dict[str, Any] | str) -> tuple[PreflightFinding, ...]:
    if isinstance(answer, str):
        return (_unreadable("auth-methods", answer, "users can register", "Policy.Read.All"),)
    return (
        _method_finding(
            answer,
            "MicrosoftAuthenticator",
            "authenticator",
            "users registering Microsoft Authenticator, the method the waves ask for",
        ),
        _method_finding(
            answer,
            "TemporaryAccessPass",
            "temporary-access-pass",
            "new hires' Temporary Access Passes (onboarding refuses to issue one)",
        ),
    )


def _method_finding(answer: Mapping[str, Any], method_id: str, check: str, blocks: str) -> PreflightFinding:
    method = _method(answer, method_id)
    where = "Microsoft Entra admin center, Protection > Authentication methods > Policies > " + (
        "Microsoft Authenticator" if method_id == "MicrosoftAuthenticator" else "Temporary Access Pass"
    )
    if method is None or method.get("state") != "enabled":
        return PreflightFinding(
            check,
            ok=False,
            detail=f"{method_id} is {'not configured' if method is None else 'disabled'}",
            blocks=blocks,
            fix=f"enable it for all users (or at least the wave groups) in the {where}",
        )
    targets = _targets(method.get("includeTargets"))
    excluded = _targets(method.get("excludeTargets"))
    if ALL_USERS in targets and excluded:
        return PreflightFinding(
            check,
            ok=False,
            detail=f"{method_id} is enabled for all users except {len(excluded)} group(s): "
            + ", ".join(excluded),
            blocks=f"{blocks} for members of those groups",
            fix=f"make sure no wave group is excluded, in the {where}",
        )
    if ALL_USERS in targets:
        return PreflightFinding(check, ok=True, detail=f"{method_id} is enabled for all users")
    return PreflightFinding(
        check,
        ok=False,
        detail=f"{method_id} is enabled only for {len(targets)} group(s), not all users",
        blocks=f"{blocks} for anyone outside those groups",
        fix=f"include all users, or make sure every wave group is a target, in the {where}",
    )


def _targets(value: object) -> Sequence[str]:
    return [str(t.get("id", "")) for t in _objects(value) if t.get("id")]
