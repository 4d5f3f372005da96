"""The properties, default projections and filter rules of the directory types served."""

from __future__ import annotations

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.odata import ResourceShape
from local.graph_emulator.odata_filter import BASIC, FilterRules

EQ = frozenset({"eq"})
EQ_IN = frozenset({"eq", "in"})

USER_PROPERTIES = frozenset(
    {
        "id",
        "displayName",
        "givenName",
        "surname",
        "userPrincipalName",
        "mail",
        "mailNickname",
        "employeeId",
        "employeeHireDate",
        "department",
        "jobTitle",
        "companyName",
        "country",
        "usageLocation",
        "officeLocation",
        "businessPhones",
        "mobilePhone",
        "preferredLanguage",
        "accountEnabled",
        "userType",
        "createdDateTime",
    }
)
# What Graph v1.0 returns for a user when no $select is given: department, employeeId, country
# and accountEnabled are NOT among them; callers must $select them, as on the real service.
USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_FILTERS = FilterRules(
    resource="User",
    properties={
        "id": EQ_IN,
        "userPrincipalName": BASIC,
        "employeeId": BASIC,
        "department": BASIC,
        "displayName": BASIC,
        "givenName": BASIC,
        "surname": BASIC,
        "mail": BASIC,
        "mailNickname": BASIC,
        "jobTitle": BASIC,
        "companyName": BASIC,
        "country": BASIC,
        "usageLocation": EQ,
        "officeLocation": BASIC,
        "accountEnabled": EQ,
        "userType": EQ_IN,
        "employeeHireDate": frozenset(),
        "createdDateTime": frozenset(),
    },
)
USER = ResourceShape("user", USER_PROPERTIES, USER_DEFAULT_PROPERTIES, USER_FILTERS)

GROUP_PROPERTIES = frozenset(
    {
        "id",
        "deletedDateTime",
        "classification",
        "createdDateTime",
        "description",
        "displayName",
        "groupTypes",
        "isAssignableToRole",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesSyncEnabled",
        "proxyAddresses",
        "renewedDateTime",
        "securityEnabled",
        "securityIdentifier",
        "visibility",
    }
)
GROUP_FILTERS = FilterRules(
    resource="Group",
    properties={
        "id": EQ_IN,
        "displayName": BASIC,
        "mailNickname": BASIC,
        "mail": BASIC,
        "description": frozenset(),
        "securityEnabled": EQ,
        "mailEnabled": EQ,
    },
)
GROUP = ResourceShape("group", GROUP_PROPERTIES, None, GROUP_FILTERS)

DIRECTORY_OBJECT = ResourceShape(
    "directoryObject",
    USER_PROPERTIES | GROUP_PROPERTIES,
    None,
    FilterRules(
        resource="DirectoryObject", properties={**GROUP_FILTERS.properties, **USER_FILTERS.properties}
    ),
)


def shape_of(obj: JsonObject) -> ResourceShape:
    """The type of a directory object held by the store (users have a userPrincipalName)."""
    return USER if "userPrincipalName" in obj else GROUP
