"""/identity/conditionalAccess/policies: list, create, get, update, delete, with Graph's shape.

Every call counts against the Conditional Access limit (1 request/s per tenant, 429 without
Retry-After) when ``rateLimits.conditionalAccess`` is on; writes also spend write-budget tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from local.graph_emulator.clock import iso_utc
from local.graph_emulator.errors import JsonObject, not_found
from local.graph_emulator.limits import CONDITIONAL_ACCESS
from local.graph_emulator.odata import ResourceShape, check_options, context_url, parse_select, project
from local.graph_emulator.odata_filter import BASIC, FilterRules, parse_filter
from local.graph_emulator.resources.ca_validation import merged, schema_error, validated_policy
from local.graph_emulator.resources.tenant_settings import refuse_policies_under_security_defaults
from local.graph_emulator.routing import Call, Response, RouteTable
from local.graph_emulator.store import register_extension

routes = RouteTable()

ODATA_TYPE = "#microsoft.graph.conditionalAccessPolicy"
BASE = "/identity/conditionalAccess/policies"
FILTERS = FilterRules(
    resource="ConditionalAccessPolicy",
    properties={"id": frozenset({"eq", "in"}), "displayName": BASIC, "state": frozenset({"eq", "in"})},
)

SHAPE = ResourceShape(
    "conditionalAccessPolicy",
    frozenset(
        {
            "id",
            "displayName",
            "state",
            "conditions",
            "grantControls",
            "sessionControls",
            "createdDateTime",
            "modifiedDateTime",
            "templateId",
        }
    ),
    None,
    FILTERS,
)


@dataclass
class Policies:
    """The tenant's Conditional Access policies by id, in creation order."""

    by_id: dict[str, JsonObject] = field(default_factory=dict)

    def count(self) -> int:
        """How many items the admin state reports."""
        return len(self.by_id)

    def to_json(self) -> JsonObject:
        return {"policies": list(self.by_id.values())}

    @classmethod
    def from_json(cls, data: JsonObject) -> Policies:
        return cls(by_id={p["id"]: p for p in data.get("policies", [])})


register_extension("conditionalAccess", Policies.from_json)


def policies(call: Call) -> Policies:
    call.emulator.rate_limits.check(CONDITIONAL_ACCESS)
    return call.store.extension("conditionalAccess", Policies)


def require_policy(call: Call) -> JsonObject:
    policy = policies(call).by_id.get(call.params["policy_id"])
    if policy is None:
        raise not_found(call.params["policy_id"])
    return policy


def view(policy: JsonObject, select: list[str] | None = None) -> JsonObject:
    return {"@odata.type": ODATA_TYPE, **project(policy, SHAPE, select)}


@routes.get(BASE)
def list_policies(call: Call) -> Response:
    check_options(call.request, allowed={"$filter", "$select"})
    select = parse_select(call.request, SHAPE)
    items = list(policies(call).by_id.values())
    raw_filter = call.request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, FILTERS, advanced=False)
        items = [p for p in items if predicate(p)]
    return Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/policies"),
            "value": [view(p, select) for p in items],
        }
    )


@routes.post(BASE)
def create_policy(call: Call) -> Response:
    state = policies(call)
    body = call.request.json()
    if not isinstance(body, dict):
        raise schema_error("the body must be a JSON object")
    refuse_policies_under_security_defaults(call.store)
    now = iso_utc(call.emulator.clock.now())
    policy: JsonObject = {
        "id": str(uuid.uuid4()),
        **validated_policy(body, call.store),
        "createdDateTime": now,
        "modifiedDateTime": None,
    }
    state.by_id[policy["id"]] = policy
    response = Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/policies/$entity"),
            **view(policy),
        }
    )
    response.status = 201
    return response


@routes.get(BASE + "/{policy_id}")
def get_policy(call: Call) -> Response:
    policy = require_policy(call)
    return Response.json(
        {
            "@odata.context": context_url(call.request, "identity/conditionalAccess/policies/$entity"),
            **view(policy),
        }
    )


@routes.patch(BASE + "/{policy_id}")
def update_policy(call: Call) -> Response:
    policy = require_policy(call)
    body = call.request.json()
    if not isinstance(body, dict):
        raise schema_error("the body must be a JSON object")
    read_only = {"id", "createdDateTime", "modifiedDateTime", "@odata.type", "@odata.context"}
    candidate = merged(
        {k: v for k, v in policy.items() if k not in read_only},
        {k: v for k, v in body.items() if k not in read_only},
    )
    validated = validated_policy(candidate, call.store)
    if validated.get("state") == "enabled" and policy.get("state") != "enabled":
        refuse_policies_under_security_defaults(call.store)  # enabling one is refused too
    policy.update(validated)
    policy["modifiedDateTime"] = iso_utc(call.emulator.clock.now())
    return Response.no_content()


@routes.delete(BASE + "/{policy_id}")
def delete_policy(call: Call) -> Response:
    policy = require_policy(call)
    del call.store.extension("conditionalAccess", Policies).by_id[policy["id"]]
    return Response.no_content()
