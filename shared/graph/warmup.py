"""Loading msgraph's model classes before the first Graph answer needs them.

The first model msgraph parses (any: a user, a Temporary Access Pass) resolves the ``entity``
discriminator map, which imports about 1,300 model classes: 1.5 s on a 2-core instance, paid by
whichever invocation parses first, then never again in the process. ``warm_models`` pays it up
front by parsing two small answers offline (no request is made), and imports the request builders
an onboarding invocation would import on its first call (``WARM_MODULES``, found by diffing
``sys.modules`` around a first hire).
"""

from __future__ import annotations

import importlib
from typing import Final

__all__ = ["WARM_MODULES", "warm_models"]

WARM_MODULES: Final = (
    "_strptime",
    "anyio._backends._asyncio",  # httpx's async backend, loaded on the first async request
    "kiota_abstractions.default_query_parameters",
    "msgraph.generated.models.o_data_errors.o_data_error",
    "msgraph.generated.groups.groups_request_builder",
    "msgraph.generated.groups.item.group_item_request_builder",
    "msgraph.generated.groups.item.members.members_request_builder",
    "msgraph.generated.groups.item.members.ref.ref_request_builder",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
    "msgraph.generated.users.item.authentication.authentication_request_builder",
    "msgraph.generated.users.item.authentication.temporary_access_pass_methods."
    "temporary_access_pass_methods_request_builder",
)


def warm_models() -> None:
    """Parse a user and a Temporary Access Pass method as Graph would answer them (offline)."""
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.models.temporary_access_pass_authentication_method import (
        TemporaryAccessPassAuthenticationMethod,
    )
    from msgraph.generated.models.user import User

    factory = JsonParseNodeFactory()
    answers = (
        (User, b'{"id": "00000000-0000-0000-0000-000000000000", "displayName": "warm-up"}'),
        (TemporaryAccessPassAuthenticationMethod, b'{"id": "warm-up", "lifetimeInMinutes": 60}'),
    )
    for model, body in answers:
        factory.get_root_parse_node("application/json", body).get_object_value(model)
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a renamed module in a newer SDK: only the warm-up misses it
            continue
