"""Validation and normalisation of ``conditionalAccessPolicy`` bodies, with Graph's error code.

Graph answers every schema problem with 400 ``BadRequest`` "1007: Incoming ConditionalAccessPolicy
object is null or does not match the schema ..."; the emulator keeps that prefix and names the
offending property after it, so a client sees Graph's code and a developer sees the field.

Beyond the schema, as Entra does: risk conditions (``signInRiskLevels``, ``userRiskLevels``) need
Entra ID P2 ("1039: Cannot create or update policies with premium P2 features ..." on a P1 tenant);
``conditions.locations`` references existing named locations (or ``All`` / ``AllTrusted``); the
``passwordChange`` control goes only with ``mfa``, operator ``AND``, all applications and a user
risk condition.
"""

from __future__ import annotations

import re
from typing import Any

from local.graph_emulator.errors import GraphError, JsonObject
from local.graph_emulator.resources.named_locations import location_ids
from local.graph_emulator.resources.tenant_settings import settings_of
from local.graph_emulator.store import TenantStore

SCHEMA_ERROR = (
    "1007: Incoming ConditionalAccessPolicy object is null or does not match the schema of "
    "ConditionalAccessPolicy type. For examples, please see API documentation at "
    "https://docs.microsoft.com/en-us/graph/api/conditionalaccessroot-post-policies?view=graph-rest-1.0."
)
STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
CLIENT_APP_TYPES = frozenset(
    {"all", "browser", "mobileAppsAndDesktopClients", "exchangeActiveSync", "easSupported", "other"}
)
BUILT_IN_CONTROLS = frozenset(
    {
        "block",
        "mfa",
        "compliantDevice",
        "domainJoinedDevice",
        "approvedApplication",
        "compliantApplication",
        "passwordChange",
    }
)
P2_ERROR = (
    "1039: Cannot create or update policies with premium P2 features. Upgrade to a premium P2 license "
    "and try again."
)
RISK_LEVELS = frozenset({"low", "medium", "high", "hidden", "none"})
LOCATION_KEYWORDS = frozenset({"All", "AllTrusted"})
# The legacy "MFA trusted IPs" location every tenant has.
MFA_TRUSTED_IPS = "00000000-0000-0000-0000-000000000000"
USER_ACTIONS = frozenset({"urn:user:registersecurityinfo", "urn:user:registerdevice"})
USER_KEYWORDS = frozenset({"All", "None", "GuestsOrExternalUsers"})
APP_KEYWORDS = frozenset({"All", "None", "Office365", "MicrosoftAdminPortals"})
# Entra's built-in authentication strengths
AUTHENTICATION_STRENGTHS = {
    "00000000-0000-0000-0000-000000000002": "Multifactor authentication",
    "00000000-0000-0000-0000-000000000003": "Passwordless MFA",
    "00000000-0000-0000-0000-000000000004": "Phishing-resistant MFA",
}
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TOP_LEVEL = frozenset(
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
        "@odata.type",
        "@odata.context",
    }
)
USERS_LISTS = (
    "includeUsers",
    "excludeUsers",
    "includeGroups",
    "excludeGroups",
    "includeRoles",
    "excludeRoles",
)
APPLICATION_LISTS = (
    "includeApplications",
    "excludeApplications",
    "includeUserActions",
    "includeAuthenticationContextClassReferences",
)
CONDITION_DEFAULTS: JsonObject = {
    "userRiskLevels": [],
    "signInRiskLevels": [],
    "servicePrincipalRiskLevels": [],
    "clientAppTypes": ["all"],
    "platforms": None,
    "locations": None,
    "devices": None,
    "clientApplications": None,
}


def schema_error(detail: str) -> GraphError:
    return GraphError(400, "BadRequest", f"{SCHEMA_ERROR} ({detail})")


def validated_policy(body: JsonObject, store: TenantStore) -> JsonObject:
    """The policy's writable properties in Graph's full shape.

    Raises:
        GraphError: 400 BadRequest naming the first property that is missing or invalid.
    """
    unknown = set(body) - TOP_LEVEL
    if unknown:
        raise schema_error(f"unknown property '{sorted(unknown)[0]}'")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise schema_error("displayName: a value is required")
    state = body.get("state")
    if state not in STATES:
        raise schema_error(f"state: must be one of {', '.join(STATES)}, got {state!r}")
    grant = body.get("grantControls")
    session = body.get("sessionControls")
    if grant is None and session is None:
        raise schema_error("grantControls or sessionControls: a policy needs at least one of them")
    if session is not None and not isinstance(session, dict):
        raise schema_error("sessionControls: must be an object")
    conditions = validated_conditions(body.get("conditions"), store)
    grant_controls = validated_grant(grant) if grant is not None else None
    if grant_controls is not None and "passwordChange" in grant_controls["builtInControls"]:
        check_password_change(grant_controls, conditions)
    return {
        "displayName": name,
        "state": state,
        "templateId": body.get("templateId"),
        "conditions": conditions,
        "grantControls": grant_controls,
        "sessionControls": session,
    }


def check_password_change(grant: JsonObject, conditions: JsonObject) -> None:
    """Entra takes ``passwordChange`` only as a user risk remediation: mfa AND passwordChange, all apps.

    Raises:
        GraphError: 400 BadRequest naming the missing piece.
    """
    if grant["operator"] != "AND" or set(grant["builtInControls"]) != {"mfa", "passwordChange"}:
        raise schema_error(
            "grantControls: passwordChange must be combined with mfa (and nothing else) under operator AND"
        )
    if conditions["applications"]["includeApplications"] != ["All"]:
        raise schema_error("grantControls: passwordChange requires includeApplications ['All']")
    if not conditions["userRiskLevels"]:
        raise schema_error("grantControls: passwordChange requires a conditions.userRiskLevels condition")


def validated_conditions(raw: Any, store: TenantStore) -> JsonObject:
    if not isinstance(raw, dict):
        raise schema_error("conditions: a value is required")
    conditions: JsonObject = {**CONDITION_DEFAULTS, **{k: v for k, v in raw.items() if k != "@odata.type"}}
    conditions["users"] = validated_users(raw.get("users"), store)
    conditions["applications"] = validated_applications(raw.get("applications"))
    for key in ("signInRiskLevels", "userRiskLevels", "servicePrincipalRiskLevels"):
        levels = string_list(conditions[key], f"conditions.{key}")
        unknown = [level for level in levels if level not in RISK_LEVELS]
        if unknown:
            raise schema_error(f"conditions.{key}: unknown risk level {unknown[0]!r}")
        conditions[key] = levels
    if (conditions["signInRiskLevels"] or conditions["userRiskLevels"]) and settings_of(
        store
    ).licence != "p2":
        raise GraphError(400, "BadRequest", P2_ERROR)
    if conditions["locations"] is not None:
        conditions["locations"] = validated_locations(conditions["locations"], store)
    client_apps = conditions["clientAppTypes"]
    if not isinstance(client_apps, list) or not client_apps or not set(client_apps) <= CLIENT_APP_TYPES:
        raise schema_error(
            f"conditions.clientAppTypes: values must be among {', '.join(sorted(CLIENT_APP_TYPES))}"
        )
    return conditions


def string_list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise schema_error(f"{where}: must be a list of strings")
    return list(raw)


def validated_users(raw: Any, store: TenantStore) -> JsonObject:
    if not isinstance(raw, dict):
        raise schema_error("conditions.users: a value is required")
    users: JsonObject = {name: string_list(raw.get(name), f"conditions.users.{name}") for name in USERS_LISTS}
    users["includeGuestsOrExternalUsers"] = raw.get("includeGuestsOrExternalUsers")
    users["excludeGuestsOrExternalUsers"] = raw.get("excludeGuestsOrExternalUsers")
    if not (
        users["includeUsers"]
        or users["includeGroups"]
        or users["includeRoles"]
        or users["includeGuestsOrExternalUsers"]
    ):
        raise schema_error("conditions.users: includeUsers, includeGroups or includeRoles needs a value")
    for name in ("includeUsers", "excludeUsers"):
        for value in users[name]:
            if value not in USER_KEYWORDS and value not in store.users:
                raise unknown_object(f"conditions.users.{name}", value, "user")
    for name in ("includeGroups", "excludeGroups"):
        for value in users[name]:
            if value not in store.groups:
                raise unknown_object(f"conditions.users.{name}", value, "group")
    for name in ("includeRoles", "excludeRoles"):
        for value in users[name]:
            if value != "All" and not GUID.match(value):
                raise unknown_object(f"conditions.users.{name}", value, "directory role template")
    return users


def validated_locations(raw: Any, store: TenantStore) -> JsonObject:
    """``conditions.locations``: ids of existing named locations, or ``All`` / ``AllTrusted``.

    Raises:
        GraphError: 400 naming the list and the value.
    """
    if not isinstance(raw, dict):
        raise schema_error("conditions.locations: must be an object")
    locations = {
        name: string_list(raw.get(name), f"conditions.locations.{name}")
        for name in ("includeLocations", "excludeLocations")
    }
    if not locations["includeLocations"]:
        raise schema_error("conditions.locations.includeLocations: a value is required")
    known = location_ids(store) | {MFA_TRUSTED_IPS}
    for name, values in locations.items():
        for value in values:
            if value not in LOCATION_KEYWORDS and value not in known:
                raise unknown_object(f"conditions.locations.{name}", value, "named location")
    return locations


def unknown_object(where: str, value: str, kind: str) -> GraphError:
    """Graph refuses a policy that references an object the directory does not hold."""
    return GraphError(
        400,
        "BadRequest",
        f"1037: The policy references an invalid or deleted {kind} '{value}' in {where}; "
        "every referenced object must exist in the directory.",
    )


def validated_applications(raw: Any) -> JsonObject:
    if not isinstance(raw, dict):
        raise schema_error("conditions.applications: a value is required")
    apps: JsonObject = {
        name: string_list(raw.get(name), f"conditions.applications.{name}") for name in APPLICATION_LISTS
    }
    apps["applicationFilter"] = raw.get("applicationFilter")
    if not (
        apps["includeApplications"]
        or apps["includeUserActions"]
        or apps["includeAuthenticationContextClassReferences"]
    ):
        raise schema_error("conditions.applications: includeApplications or includeUserActions needs a value")
    if apps["includeApplications"] and apps["includeUserActions"]:
        raise schema_error(
            "conditions.applications: includeApplications and includeUserActions exclude each other"
        )
    for value in apps["includeUserActions"]:
        if value not in USER_ACTIONS:
            raise schema_error(f"conditions.applications.includeUserActions: unknown user action {value!r}")
    for name in ("includeApplications", "excludeApplications"):
        for value in apps[name]:
            if value not in APP_KEYWORDS and not GUID.match(value):
                raise schema_error(f"conditions.applications.{name}: {value!r} is not an application id")
    return apps


def validated_grant(raw: Any) -> JsonObject:
    if not isinstance(raw, dict):
        raise schema_error("grantControls: must be an object")
    operator = raw.get("operator")
    if operator not in ("AND", "OR"):
        raise schema_error(f"grantControls.operator: must be AND or OR, got {operator!r}")
    controls = string_list(raw.get("builtInControls"), "grantControls.builtInControls")
    unknown = [c for c in controls if c not in BUILT_IN_CONTROLS]
    if unknown:
        raise schema_error(f"grantControls.builtInControls: unknown control {unknown[0]!r}")
    if "block" in controls and len(controls) > 1:
        raise schema_error("grantControls.builtInControls: block cannot be combined with other controls")
    strength = validated_strength(raw.get("authenticationStrength"))
    terms = string_list(raw.get("termsOfUse"), "grantControls.termsOfUse")
    factors = string_list(raw.get("customAuthenticationFactors"), "grantControls.customAuthenticationFactors")
    if not (controls or strength or terms or factors):
        raise schema_error("grantControls: builtInControls or authenticationStrength needs a value")
    if strength is not None and "mfa" in controls:
        raise schema_error("grantControls: authenticationStrength and the mfa control exclude each other")
    return {
        "operator": operator,
        "builtInControls": controls,
        "customAuthenticationFactors": factors,
        "termsOfUse": terms,
        "authenticationStrength": strength,
    }


def validated_strength(raw: Any) -> JsonObject | None:
    if raw is None:
        return None
    strength_id = raw.get("id") if isinstance(raw, dict) else None
    if strength_id not in AUTHENTICATION_STRENGTHS:
        raise schema_error(f"grantControls.authenticationStrength.id: unknown strength {strength_id!r}")
    return {
        "id": strength_id,
        "displayName": AUTHENTICATION_STRENGTHS[strength_id],
        "policyType": "builtIn",
    }


def merged(current: Any, patch: Any) -> Any:
    """A PATCH applied: objects merge property by property, anything else is replaced."""
    if isinstance(current, dict) and isinstance(patch, dict):
        result = dict(current)
        for key, value in patch.items():
            result[key] = merged(current.get(key), value)
        return result
    return patch
