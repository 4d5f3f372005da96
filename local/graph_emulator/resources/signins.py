"""GET /auditLogs/signIns (Graph's signIn shape) and the admin API that injects sign-ins.

Tests and the demo describe sign-ins with only what matters to them (who, when, which CA policies
applied with which result); the rest is filled with Graph's shape and plausible defaults. Newest
first, as Graph lists them.

``authenticationRequirement`` and ``authenticationDetails`` exist only in beta's signIn: ``/beta``
lists them, ``/v1.0`` leaves them out, as Graph does. Not given, the requirement is
``multiFactorAuthentication`` when an enforced policy that applied (``success``/``failure``) grants
with ``mfa``, and the details are a password step plus, then, an MFA step completed in the app.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from local.graph_emulator.clock import iso_utc, parse_iso
from local.graph_emulator.errors import GraphError, JsonObject, bad_request, not_found
from local.graph_emulator.odata import context_url
from local.graph_emulator.odata_filter import BASIC, FilterRules
from local.graph_emulator.resources.reports import list_report
from local.graph_emulator.routing import V1, Call, Response, RouteTable, request_version
from local.graph_emulator.store import TenantStore, register_extension

routes = RouteTable()
admin_routes = RouteTable()

EXTENSION = "signIns"
ODATA_TYPE = "#microsoft.graph.signIn"
POLICY_RESULTS = frozenset(
    {
        "success",
        "failure",
        "notApplied",
        "notEnabled",
        "unknown",
        "reportOnlySuccess",
        "reportOnlyFailure",
        "reportOnlyNotApplied",
        "reportOnlyInterrupted",
    }
)
CA_STATUSES = frozenset({"success", "failure", "notApplied"})
RISK_LEVELS = frozenset({"none", "low", "medium", "high", "hidden"})
RANGE = frozenset({"eq", "ge", "le", "gt", "lt"})
FILTERS = FilterRules(
    resource="SignIn",
    properties={
        "id": frozenset({"eq", "in"}),
        "userId": frozenset({"eq", "in"}),
        "userPrincipalName": BASIC,
        "userDisplayName": BASIC,
        "appId": frozenset({"eq", "in"}),
        "appDisplayName": BASIC,
        "clientAppUsed": frozenset({"eq", "in"}),
        "conditionalAccessStatus": frozenset({"eq"}),
        "ipAddress": BASIC,
        "riskLevelDuringSignIn": frozenset({"eq"}),
        "isInteractive": frozenset({"eq"}),
        "createdDateTime": RANGE,
        "status/errorCode": frozenset({"eq"}),
        "location/countryOrRegion": frozenset({"eq"}),
    },
)
INPUT_FIELDS = frozenset(
    {
        "id",
        "createdDateTime",
        "userId",
        "userPrincipalName",
        "appId",
        "appDisplayName",
        "clientAppUsed",
        "ipAddress",
        "location",
        "status",
        "conditionalAccessStatus",
        "appliedConditionalAccessPolicies",
        "riskLevelDuringSignIn",
        "riskLevelAggregated",
        "riskState",
        "riskDetail",
        "isInteractive",
        "deviceDetail",
        "resourceDisplayName",
        "resourceId",
        "correlationId",
        "authenticationRequirement",
        "authenticationDetails",
    }
)
# Beta-only signIn properties: /v1.0 answers without them.
BETA_ONLY = ("authenticationRequirement", "authenticationDetails")
REQUIREMENTS = frozenset({"singleFactorAuthentication", "multiFactorAuthentication"})
# Graph's authenticationDetail keys, with what a partly injected step gets for the rest.
AUTH_DETAIL: JsonObject = {
    "authenticationMethod": None,
    "authenticationMethodDetail": None,
    "authenticationStepDateTime": None,
    "authenticationStepRequirement": None,
    "authenticationStepResultDetail": None,
    "succeeded": True,
}
# Graph's deviceDetail and signInLocation keys, with what a partly injected one gets for the rest.
DEVICE_DETAIL: JsonObject = {
    "deviceId": "",
    "displayName": "",
    "operatingSystem": None,
    "browser": None,
    "isCompliant": False,
    "isManaged": False,
    "trustType": "",
}
LOCATION: JsonObject = {"city": None, "state": None, "countryOrRegion": None, "geoCoordinates": None}
OFFICE_365 = ("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome")


@dataclass
class SignIns:
    """Injected sign-ins, in the order they were added."""

    items: list[JsonObject] = field(default_factory=list)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.items)

    def to_json(self) -> JsonObject:
        return {"items": self.items}

    @classmethod
    def from_json(cls, data: JsonObject) -> SignIns:
        return cls(items=list(data.get("items", [])))


register_extension(EXTENSION, SignIns.from_json)


def filter_view(item: JsonObject) -> JsonObject:
    return {
        **item,
        "status/errorCode": (item.get("status") or {}).get("errorCode"),
        "location/countryOrRegion": (item.get("location") or {}).get("countryOrRegion"),
    }


def newest_first(call: Call) -> list[JsonObject]:
    state = call.store.extensions.get(EXTENSION)
    items = state.items if isinstance(state, SignIns) else []
    ordered = sorted(items, key=lambda s: parse_iso(s["createdDateTime"]), reverse=True)
    if request_version(call.request) == V1:
        return [{k: v for k, v in item.items() if k not in BETA_ONLY} for item in ordered]
    return ordered


@routes.get("/auditLogs/signIns")
def list_sign_ins(call: Call) -> Response:
    return list_report(
        call.request,
        newest_first(call),
        FILTERS,
        context="auditLogs/signIns",
        odata_type=ODATA_TYPE,
        ranges=True,
        filter_view=filter_view,
    )


@routes.get("/auditLogs/signIns/{sign_in_id}")
def get_sign_in(call: Call) -> Response:
    found = next((s for s in newest_first(call) if s["id"] == call.params["sign_in_id"]), None)
    if found is None:
        raise not_found(call.params["sign_in_id"])
    return Response.json(
        {
            "@odata.context": context_url(call.request, "auditLogs/signIns/$entity"),
            "@odata.type": ODATA_TYPE,
            **found,
        }
    )


@admin_routes.post("/signins")
def add_sign_ins(call: Call) -> Response:
    """Inject one sign-in (object) or several (list); answers them as Graph will list them."""
    raw = call.request.json()
    items = raw if isinstance(raw, list) else [raw]
    now = iso_utc(call.emulator.clock.now())
    built = [build_sign_in(call.store, item, f"signIns[{index}]", now) for index, item in enumerate(items)]
    call.store.extension(EXTENSION, SignIns).items.extend(built)
    return Response.json({"value": built} if isinstance(raw, list) else built[0], status=201)


@admin_routes.delete("/signins")
def clear_sign_ins(call: Call) -> Response:
    call.store.extension(EXTENSION, SignIns).items.clear()
    return Response.no_content()


def invalid(where: str, message: str) -> GraphError:
    return bad_request(f"{where}.{message}", code="BadRequest")


def build_sign_in(store: TenantStore, raw: Any, where: str, now: str) -> JsonObject:
    """A full signIn from the fields given.

    Raises:
        GraphError: 400 naming the field that is unknown, missing or invalid.
    """
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", code="BadRequest")
    unknown = set(raw) - INPUT_FIELDS
    if unknown:
        raise bad_request(f"{where} has unknown fields: {', '.join(sorted(unknown))}", code="BadRequest")
    user = store.find_user(str(raw.get("userId") or raw.get("userPrincipalName") or ""))
    if user is None:
        raise invalid(where, "userId: no user has this id or userPrincipalName")
    created = raw.get("createdDateTime", now)
    try:
        created = iso_utc(parse_iso(created)) if isinstance(created, str) else None
    except ValueError:
        created = None
    if created is None:
        raise invalid(where, "createdDateTime: must be an ISO 8601 date and time")
    policies = [
        applied_policy(p, f"{where}.appliedConditionalAccessPolicies[{i}]")
        for i, p in enumerate(raw.get("appliedConditionalAccessPolicies") or [])
    ]
    status = raw.get("status") or {}
    error_code = status.get("errorCode", 0) if isinstance(status, dict) else None
    if isinstance(error_code, bool) or not isinstance(error_code, int):
        raise invalid(where, "status.errorCode: must be an integer (0 for success)")
    ca_status = raw.get("conditionalAccessStatus") or derived_ca_status(policies)
    if ca_status not in CA_STATUSES:
        raise invalid(where, f"conditionalAccessStatus: must be one of {', '.join(sorted(CA_STATUSES))}")
    risk = raw.get("riskLevelDuringSignIn", "none")
    if risk not in RISK_LEVELS:
        raise invalid(where, f"riskLevelDuringSignIn: must be one of {', '.join(sorted(RISK_LEVELS))}")
    app_id, app_name = raw.get("appId", OFFICE_365[0]), raw.get("appDisplayName", OFFICE_365[1])
    requirement = raw.get("authenticationRequirement") or derived_requirement(policies)
    if requirement not in REQUIREMENTS:
        raise invalid(where, f"authenticationRequirement: must be one of {', '.join(sorted(REQUIREMENTS))}")
    return {
        "id": raw.get("id") or str(uuid.uuid4()),
        "createdDateTime": created,
        "userDisplayName": user.get("displayName"),
        "userPrincipalName": user["userPrincipalName"],
        "userId": user["id"],
        "appId": app_id,
        "appDisplayName": app_name,
        "ipAddress": raw.get("ipAddress", "203.0.113.10"),
        "clientAppUsed": raw.get("clientAppUsed", "Browser"),
        "correlationId": raw.get("correlationId") or str(uuid.uuid4()),
        "conditionalAccessStatus": ca_status,
        "isInteractive": raw.get("isInteractive", True),
        "riskDetail": raw.get("riskDetail", "none"),
        "riskLevelAggregated": raw.get("riskLevelAggregated", risk),
        "riskLevelDuringSignIn": risk,
        "riskState": raw.get("riskState", "none"),
        "riskEventTypes_v2": [],
        "resourceDisplayName": raw.get("resourceDisplayName", "Office 365 Exchange Online"),
        "resourceId": raw.get("resourceId", "00000002-0000-0ff1-ce00-000000000000"),
        "status": {
            "errorCode": error_code,
            "failureReason": status.get("failureReason") if error_code else None,
            "additionalDetails": status.get("additionalDetails"),
        },
        "deviceDetail": completed(raw, "deviceDetail", where, DEVICE_DETAIL)
        or {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": "Windows 10",
            "browser": "Edge 120.0.0",
            "isCompliant": False,
            "isManaged": False,
            "trustType": "",
        },
        "location": completed(raw, "location", where, LOCATION)
        or {
            "city": "London",
            "state": "England",
            "countryOrRegion": user.get("usageLocation") or "GB",
            "geoCoordinates": {"altitude": None, "latitude": 51.5072, "longitude": -0.1276},
        },
        "appliedConditionalAccessPolicies": policies,
        "authenticationRequirement": requirement,
        "authenticationDetails": auth_details(raw, where, requirement, created),
    }


def derived_requirement(policies: list[JsonObject]) -> str:
    """MFA was required when an enforced policy that applied grants with ``mfa``."""
    for policy in policies:
        grants = [str(g).casefold() for g in policy["enforcedGrantControls"]]
        if policy["result"] in ("success", "failure") and "mfa" in grants:
            return "multiFactorAuthentication"
    return "singleFactorAuthentication"


def auth_details(raw: JsonObject, where: str, requirement: str, created: str) -> list[JsonObject]:
    """The given ``authenticationDetails`` with Graph's keys, or a password step (and an MFA step).

    Raises:
        GraphError: 400 when the value is not a list of objects or a step names an unknown key.
    """
    given = raw.get("authenticationDetails")
    if given is None:
        steps: list[JsonObject] = [
            {
                **AUTH_DETAIL,
                "authenticationMethod": "Password",
                "authenticationMethodDetail": "Password in the cloud",
                "authenticationStepDateTime": created,
                "authenticationStepRequirement": "Primary authentication",
                "authenticationStepResultDetail": "Correct password",
            }
        ]
        if requirement == "multiFactorAuthentication":
            steps.append(
                {
                    **AUTH_DETAIL,
                    "authenticationMethod": "Mobile app notification",
                    "authenticationStepDateTime": created,
                    "authenticationStepRequirement": "Multifactor authentication",
                    "authenticationStepResultDetail": "MFA successfully completed",
                }
            )
        return steps
    if not isinstance(given, list):
        raise invalid(where, "authenticationDetails: must be a list of objects")
    steps = []
    for index, step in enumerate(given):
        if not isinstance(step, dict):
            raise invalid(where, f"authenticationDetails[{index}]: must be an object")
        unknown = set(step) - set(AUTH_DETAIL)
        if unknown:
            raise invalid(
                where, f"authenticationDetails[{index}] has unknown fields: {', '.join(sorted(unknown))}"
            )
        steps.append({**AUTH_DETAIL, "authenticationStepDateTime": created, **step})
    return steps


def completed(raw: JsonObject, name: str, where: str, keys: JsonObject) -> JsonObject | None:
    """A partly given ``deviceDetail`` or ``location`` with every key of Graph's shape (None if absent).

    Raises:
        GraphError: 400 when the value is not an object or names a key the type does not have.
    """
    value = raw.get(name)
    if not value:
        return None
    if not isinstance(value, dict):
        raise invalid(where, f"{name}: must be an object")
    unknown = set(value) - set(keys)
    if unknown:
        raise invalid(where, f"{name} has unknown fields: {', '.join(sorted(unknown))}")
    return {**keys, **value}


def applied_policy(raw: Any, where: str) -> JsonObject:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", code="BadRequest")
    result = raw.get("result")
    if result not in POLICY_RESULTS:
        raise bad_request(
            f"{where}.result: must be one of {', '.join(sorted(POLICY_RESULTS))}", code="BadRequest"
        )
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        raise bad_request(f"{where}.id: the policy id is required", code="BadRequest")
    return {
        "id": raw["id"],
        "displayName": raw.get("displayName"),
        "enforcedGrantControls": list(raw.get("enforcedGrantControls") or []),
        "enforcedSessionControls": list(raw.get("enforcedSessionControls") or []),
        "result": result,
    }


def derived_ca_status(policies: list[JsonObject]) -> str:
    """What Graph reports overall: report-only results never change it."""
    enforced = [p["result"] for p in policies if not p["result"].startswith("reportOnly")]
    if "failure" in enforced:
        return "failure"
    if "success" in enforced:
        return "success"
    return "notApplied"
