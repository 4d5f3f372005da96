"""A user's registered authentication methods and directory roles, in Graph's shapes.

``GET /users/{id}/authentication/methods``: the password (every account has one) plus one
``authenticationMethod`` per method registered through the admin API or the seed.
``GET /users/{id}/transitiveMemberOf/microsoft.graph.directoryRole``: Global Administrator for a
user registered with ``"isAdmin": true``, else empty.
"""

from __future__ import annotations

import uuid
from typing import Final

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.odata import context_url
from local.graph_emulator.resources.registration import EXTENSION, Registrations
from local.graph_emulator.routing import Call, Response, RouteTable

routes = RouteTable()

# Registration method names -> the authenticationMethod subtype Graph lists them as.
METHOD_TYPES: Final = {
    "microsoftAuthenticatorPush": "microsoftAuthenticatorAuthenticationMethod",
    "microsoftAuthenticatorPasswordless": "microsoftAuthenticatorAuthenticationMethod",
    "fido2": "fido2AuthenticationMethod",
    "passKeyDeviceBound": "fido2AuthenticationMethod",
    "passKeyDeviceBoundAuthenticator": "fido2AuthenticationMethod",
    "windowsHelloForBusiness": "windowsHelloForBusinessAuthenticationMethod",
    "macOsPlatformCredential": "platformCredentialAuthenticationMethod",
    "mobilePhone": "phoneAuthenticationMethod",
    "alternateMobilePhone": "phoneAuthenticationMethod",
    "officePhone": "phoneAuthenticationMethod",
    "softwareOneTimePasscode": "softwareOathAuthenticationMethod",
    "hardwareOneTimePasscode": "hardwareOathAuthenticationMethod",
    "email": "emailAuthenticationMethod",
    "temporaryAccessPass": "temporaryAccessPassAuthenticationMethod",
}


def stable_uuid(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"waveguard-emulator/{key}"))


GLOBAL_ADMINISTRATOR: Final = "62e90394-69f5-4237-9190-012177145e10"
PASSWORD_METHOD_ID: Final = "28c10230-6103-485e-b985-444c60001490"  # Graph's fixed id for the password


def _record(call: Call, user_id: str) -> JsonObject | None:
    state = call.store.extensions.get(EXTENSION)
    return state.by_user.get(user_id) if isinstance(state, Registrations) else None


@routes.get("/users/{user_id}/authentication/methods")
def list_methods(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    record = _record(call, user["id"])
    methods: list[JsonObject] = [
        {
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
            "password": None,
        }
    ]
    for name in record["methods"] if record else []:
        kind = METHOD_TYPES.get(name)
        if kind is not None:
            methods.append(
                {"@odata.type": f"#microsoft.graph.{kind}", "id": stable_uuid(f"{user['id']}/{name}")}
            )
    context = context_url(call.request, f"users('{user['id']}')/authentication/methods")
    return Response.json({"@odata.context": context, "value": methods})


@routes.get("/users/{user_id}/transitiveMemberOf/microsoft.graph.directoryRole")
def list_roles(call: Call) -> Response:
    user = call.store.require_user(call.params["user_id"])
    record = _record(call, user["id"])
    roles: list[JsonObject] = []
    if record and record.get("isAdmin"):
        roles.append(
            {
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": stable_uuid("role/" + GLOBAL_ADMINISTRATOR),
                "displayName": "Global Administrator",
                "roleTemplateId": GLOBAL_ADMINISTRATOR,
            }
        )
    context = context_url(call.request, "directoryRoles")
    return Response.json({"@odata.context": context, "value": roles})
