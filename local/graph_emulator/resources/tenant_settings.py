"""The tenant settings a Conditional Access rollout depends on, in Graph's shapes:

- ``GET /policies/identitySecurityDefaultsEnforcementPolicy`` (security defaults on or off);
- ``GET /subscribedSkus`` (the licences: none, Entra ID P1 as in Microsoft 365 E3, or P2 as in E5);
- ``GET /policies/authenticationMethodsPolicy`` (Microsoft Authenticator, Temporary Access Pass
  and the other methods, each enabled or disabled for its targets).

The demo tenant is ready for WaveGuard (security defaults off, E5, Authenticator and TAP enabled
for all users). ``PATCH /_emulator/tenant-settings`` crafts any other tenant; while security
defaults are on, creating or enabling a Conditional Access policy fails as Entra refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.odata import context_url
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

__all__ = ["TenantSettings", "admin_routes", "refuse_policies_under_security_defaults", "routes"]

routes = RouteTable()
admin_routes = RouteTable()

EXTENSION: Final = "tenantSettings"
SECURITY_DEFAULTS_ID: Final = "00000000-0000-0000-0000-000000000005"
ALL_USERS: Final = "all_users"
# What each licence choice subscribes to (Graph's skuPartNumber and service plan names).
LICENCES: Final[dict[str, list[JsonObject]]] = {
    "none": [],
    "p1": [
        {
            "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965",
            "skuPartNumber": "SPE_E3",
            "plans": ["AAD_PREMIUM", "EXCHANGE_S_ENTERPRISE"],
        }
    ],
    "p2": [
        {
            "skuId": "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
            "skuPartNumber": "SPE_E5",
            "plans": ["AAD_PREMIUM", "AAD_PREMIUM_P2", "EXCHANGE_S_ENTERPRISE"],
        }
    ],
}
METHODS: Final = (
    "MicrosoftAuthenticator",
    "TemporaryAccessPass",
    "Fido2",
    "Sms",
    "SoftwareOath",
    "Email",
)
_METHOD_TYPES: Final = {
    "MicrosoftAuthenticator": "microsoftAuthenticatorAuthenticationMethodConfiguration",
    "TemporaryAccessPass": "temporaryAccessPassAuthenticationMethodConfiguration",
    "Fido2": "fido2AuthenticationMethodConfiguration",
    "Sms": "smsAuthenticationMethodConfiguration",
    "SoftwareOath": "softwareOathAuthenticationMethodConfiguration",
    "Email": "emailAuthenticationMethodConfiguration",
}
_ENABLED_BY_DEFAULT: Final = frozenset({"MicrosoftAuthenticator", "TemporaryAccessPass", "Fido2"})


@dataclass
class TenantSettings:
    """Security defaults, the licence and each authentication method's state and targets."""

    security_defaults: bool = False
    licence: str = "p2"
    method_states: dict[str, str] = field(
        default_factory=lambda: {m: "enabled" if m in _ENABLED_BY_DEFAULT else "disabled" for m in METHODS}
    )
    method_targets: dict[str, list[str]] = field(default_factory=lambda: {m: [ALL_USERS] for m in METHODS})

    def count(self) -> int:
        """How many items the admin state reports (the methods enabled)."""
        return sum(1 for state in self.method_states.values() if state == "enabled")

    def to_json(self) -> JsonObject:
        return {
            "securityDefaults": self.security_defaults,
            "licence": self.licence,
            "methods": dict(self.method_states),
            "methodTargets": {m: list(t) for m, t in self.method_targets.items()},
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> TenantSettings:
        settings = cls()
        settings.update(data)
        return settings

    def update(self, data: Any) -> None:
        """Apply an admin body; every field is checked before any is applied.

        Raises:
            GraphError: 400 naming the field.
        """
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object")
        unknown = set(data) - {"securityDefaults", "licence", "methods", "methodTargets"}
        if unknown:
            raise bad_request(f"unknown tenant settings: {', '.join(sorted(unknown))}")
        defaults = data.get("securityDefaults", self.security_defaults)
        if not isinstance(defaults, bool):
            raise bad_request("securityDefaults must be true or false")
        licence = data.get("licence", self.licence)
        if licence not in LICENCES:
            raise bad_request(f"licence must be one of {', '.join(LICENCES)}, got {licence!r}")
        states = {**self.method_states, **_methods(data.get("methods", {}))}
        targets = {**self.method_targets, **_targets(data.get("methodTargets", {}))}
        self.security_defaults, self.licence = defaults, licence
        self.method_states, self.method_targets = states, targets


def _methods(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise bad_request("methods must be an object of method id to 'enabled' or 'disabled'")
    for method, state in raw.items():
        if method not in METHODS:
            raise bad_request(f"methods: unknown method {method!r}; known: {', '.join(METHODS)}")
        if state not in ("enabled", "disabled"):
            raise bad_request(f"methods.{method} must be 'enabled' or 'disabled', got {state!r}")
    return {str(k): str(v) for k, v in raw.items()}


def _targets(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise bad_request("methodTargets must be an object of method id to a list of group ids")
    for method, targets in raw.items():
        if method not in METHODS:
            raise bad_request(f"methodTargets: unknown method {method!r}")
        if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
            raise bad_request(f"methodTargets.{method} must be a list of group ids (or 'all_users')")
    return {str(k): [str(t) for t in v] for k, v in raw.items()}


register_extension(EXTENSION, TenantSettings.from_json)


def settings_of(store: TenantStore) -> TenantSettings:
    return store.extension(EXTENSION, TenantSettings)


@routes.get("/policies/identitySecurityDefaultsEnforcementPolicy")
def get_security_defaults(call: Call) -> Response:
    return Response.json(
        {
            "@odata.context": context_url(
                call.request, "policies/identitySecurityDefaultsEnforcementPolicy/$entity"
            ),
            "id": SECURITY_DEFAULTS_ID,
            "displayName": "Security Defaults",
            "description": "Security defaults is a set of basic identity security mechanisms recommended "
            "by Microsoft. When enabled, these recommendations will be automatically enforced in your "
            "organization.",
            "isEnabled": settings_of(call.store).security_defaults,
        }
    )


@routes.get("/subscribedSkus")
def list_subscribed_skus(call: Call) -> Response:
    skus = [_sku(sku) for sku in LICENCES[settings_of(call.store).licence]]
    return Response.json({"@odata.context": context_url(call.request, "subscribedSkus"), "value": skus})


def _sku(sku: JsonObject) -> JsonObject:
    return {
        "id": f"00000000-0000-0000-0000-000000000000_{sku['skuId']}",
        "skuId": sku["skuId"],
        "skuPartNumber": sku["skuPartNumber"],
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": 25,
        "prepaidUnits": {"enabled": 50, "suspended": 0, "warning": 0},
        "servicePlans": [
            {"servicePlanName": name, "provisioningStatus": "Success", "appliesTo": "User"}
            for name in sku["plans"]
        ],
    }


@routes.get("/policies/authenticationMethodsPolicy")
def get_authentication_methods_policy(call: Call) -> Response:
    settings = settings_of(call.store)
    configurations = [
        {
            "@odata.type": f"#microsoft.graph.{_METHOD_TYPES[method]}",
            "id": method,
            "state": settings.method_states[method],
            "includeTargets": [
                {"targetType": "group", "id": target, "isRegistrationRequired": False}
                for target in settings.method_targets[method]
            ],
            "excludeTargets": [],
        }
        for method in METHODS
    ]
    return Response.json(
        {
            "@odata.context": context_url(call.request, "policies/authenticationMethodsPolicy/$entity"),
            "id": "authenticationMethodsPolicy",
            "displayName": "Authentication Methods Policy",
            "policyVersion": "1.5",
            "authenticationMethodConfigurations": configurations,
        }
    )


@admin_routes.get("/tenant-settings")
def admin_get(call: Call) -> Response:
    return Response.json(settings_of(call.store).to_json())


@admin_routes.patch("/tenant-settings")
def admin_patch(call: Call) -> Response:
    settings = settings_of(call.store)
    settings.update(call.request.json())
    return Response.json(settings.to_json())


def refuse_policies_under_security_defaults(store: TenantStore) -> None:
    """Entra refuses Conditional Access policies while security defaults are on.

    Raises:
        GraphError: 400 BadRequest while security defaults are on.
    """
    if settings_of(store).security_defaults:
        raise GraphError(
            400,
            "BadRequest",
            "Security Defaults is enabled in the tenant. Disable Security Defaults to create or enable "
            "Conditional Access policies.",
        )
