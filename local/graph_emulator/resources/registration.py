"""GET /reports/authenticationMethods/userRegistrationDetails, derived from each user's methods.

Methods are registered through the admin API (``POST /_emulator/users/{id}/methods``) or by the
demo seed. What Graph derives is derived here the same way: MFA-registered means a strong method
(Authenticator, OTP, phone, FIDO2, Windows Hello, passkey); e-mail and security questions count only
for self-service password reset. Graph limits this report to 5 requests per 10 s (``limits.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import GraphError, JsonObject, bad_request, not_found
from local.graph_emulator.limits import REGISTRATION_DETAILS
from local.graph_emulator.odata import context_url
from local.graph_emulator.odata_filter import BASIC, FilterRules
from local.graph_emulator.resources.reports import list_report
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import TenantStore, register_extension

routes = RouteTable()
admin_routes = RouteTable()

EXTENSION = "registration"
ODATA_TYPE = "#microsoft.graph.userRegistrationDetails"
BASE = "/reports/authenticationMethods/userRegistrationDetails"
PASSWORDLESS = frozenset(
    {
        "microsoftAuthenticatorPasswordless",
        "fido2",
        "windowsHelloForBusiness",
        "passKeyDeviceBound",
        "passKeyDeviceBoundAuthenticator",
        "macOsPlatformCredential",
    }
)
PHONE = frozenset({"mobilePhone", "alternateMobilePhone", "officePhone"})
STRONG = (
    PASSWORDLESS
    | PHONE
    | {"microsoftAuthenticatorPush", "softwareOneTimePasscode", "hardwareOneTimePasscode"}
)
SSPR = PHONE | {
    "email",
    "securityQuestion",
    "microsoftAuthenticatorPush",
    "softwareOneTimePasscode",
    "hardwareOneTimePasscode",
}
METHODS = STRONG | SSPR | {"temporaryAccessPass", "appPassword"}
BOOLEAN = frozenset({"eq"})
FILTERS = FilterRules(
    resource="UserRegistrationDetails",
    properties={
        "id": frozenset({"eq", "in"}),
        "userPrincipalName": BASIC,
        "userDisplayName": BASIC,
        "userType": BOOLEAN,
        **dict.fromkeys(
            (
                "isAdmin",
                "isMfaCapable",
                "isMfaRegistered",
                "isPasswordlessCapable",
                "isSsprCapable",
                "isSsprEnabled",
                "isSsprRegistered",
                "isSystemPreferredAuthenticationMethodEnabled",
            ),
            BOOLEAN,
        ),
    },
)


@dataclass
class Registrations:
    """Per user id: ``{"methods": [...], "isAdmin": bool, "lastUpdatedDateTime": iso}``."""

    by_user: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.by_user)

    def to_json(self) -> JsonObject:
        return {"byUser": self.by_user}

    @classmethod
    def from_json(cls, data: JsonObject) -> Registrations:
        return cls(by_user=dict(data.get("byUser", {})))


register_extension(EXTENSION, Registrations.from_json)


def register_methods(
    store: TenantStore, user_id: str, methods: list[str], *, updated: str, is_admin: bool | None = None
) -> JsonObject:
    """Add methods to a user's registrations (already registered ones stay); answers the record."""
    state = store.extension(EXTENSION, Registrations)
    record = state.by_user.setdefault(
        user_id, {"methods": [], "isAdmin": False, "lastUpdatedDateTime": updated}
    )
    added = [m for m in methods if m not in record["methods"]]
    if added:
        record["methods"] = [*record["methods"], *added]
        record["lastUpdatedDateTime"] = updated
    if is_admin is not None:
        record["isAdmin"] = is_admin
    return record


def is_mfa_registered(store: TenantStore, user_id: str) -> bool:
    """Whether the user has registered a strong (MFA) method, as the registration report derives it."""
    state = store.extensions.get(EXTENSION)
    record = state.by_user.get(user_id) if isinstance(state, Registrations) else None
    return bool(record and any(m in STRONG for m in record["methods"]))


def preferred(methods: list[str]) -> str:
    """The second factor Graph reports as preferred for a set of methods."""
    if "microsoftAuthenticatorPush" in methods or "microsoftAuthenticatorPasswordless" in methods:
        return "push"
    if "softwareOneTimePasscode" in methods or "hardwareOneTimePasscode" in methods:
        return "oath"
    if "mobilePhone" in methods:
        return "sms"
    return "none"


def details(user: JsonObject, record: JsonObject | None) -> JsonObject:
    """The user's userRegistrationDetails as Graph derives it."""
    methods = list(record["methods"]) if record else []
    mfa = any(m in STRONG for m in methods)
    sspr = any(m in SSPR for m in methods)
    second = preferred(methods)
    return {
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "userDisplayName": user.get("displayName"),
        "userType": "guest" if user.get("userType") == "Guest" else "member",
        "isAdmin": bool(record and record["isAdmin"]),
        "isSsprRegistered": sspr,
        "isSsprEnabled": True,
        "isSsprCapable": sspr,
        "isMfaRegistered": mfa,
        "isMfaCapable": mfa,
        "isPasswordlessCapable": any(m in PASSWORDLESS for m in methods),
        "methodsRegistered": methods,
        "isSystemPreferredAuthenticationMethodEnabled": True,
        "systemPreferredAuthenticationMethods": [] if second == "none" else [second],
        "userPreferredMethodForSecondaryAuthentication": second,
        "lastUpdatedDateTime": record["lastUpdatedDateTime"] if record else user.get("createdDateTime"),
    }


def all_details(call: Call) -> list[JsonObject]:
    call.emulator.rate_limits.check(REGISTRATION_DETAILS)
    state = call.store.extensions.get(EXTENSION)
    by_user = state.by_user if isinstance(state, Registrations) else {}
    return [details(user, by_user.get(user["id"])) for user in call.store.users.values()]


@routes.get(BASE)
def list_registration_details(call: Call) -> Response:
    return list_report(
        call.request,
        all_details(call),
        FILTERS,
        context="reports/authenticationMethods/userRegistrationDetails",
        odata_type=ODATA_TYPE,
    )


@routes.get(BASE + "/{user_id}")
def get_registration_details(call: Call) -> Response:
    wanted = call.params["user_id"]
    found = next((d for d in all_details(call) if d["id"] == wanted), None)
    if found is None:
        raise not_found(wanted)
    return Response.json(
        {
            "@odata.context": context_url(
                call.request, "reports/authenticationMethods/userRegistrationDetails/$entity"
            ),
            "@odata.type": ODATA_TYPE,
            **found,
        }
    )


@admin_routes.post("/users/{user_id}/methods")
def add_methods(call: Call) -> Response:
    """Register methods for a user: ``{"methods": [...], "isAdmin": bool (optional)}``."""
    user = call.store.find_user(call.params["user_id"])
    if user is None:
        raise bad_request(f"users/{call.params['user_id']}: no user has this id or UPN", code="BadRequest")
    body = call.request.json_object()
    methods = parse_methods(body.get("methods"))
    is_admin = body.get("isAdmin")
    if is_admin is not None and not isinstance(is_admin, bool):
        raise bad_request("isAdmin must be true or false", code="BadRequest")
    record = register_methods(
        call.store, user["id"], methods, updated=iso_utc(call.emulator.clock.now()), is_admin=is_admin
    )
    return Response.json({"userId": user["id"], **record}, status=201)


@admin_routes.delete("/users/{user_id}/methods")
def clear_methods(call: Call) -> Response:
    user = call.store.find_user(call.params["user_id"])
    if user is None:
        raise bad_request(f"users/{call.params['user_id']}: no user has this id or UPN", code="BadRequest")
    state = call.store.extensions.get(EXTENSION)
    if isinstance(state, Registrations):
        state.by_user.pop(user["id"], None)
    return Response.no_content()


def parse_methods(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise GraphError(400, "BadRequest", "methods must be a list of method names")
    unknown = [m for m in raw if m not in METHODS]
    if unknown:
        raise GraphError(
            400, "BadRequest", f"methods: unknown method {unknown[0]!r}; known: {', '.join(sorted(METHODS))}"
        )
    return list(dict.fromkeys(raw))
