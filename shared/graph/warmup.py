"""Loading the Graph code an onboarding invocation runs before the first one needs it.

Onboarding reads and writes Graph as raw JSON: it parses no msgraph model, so it never pays for
the ``entity`` discriminator map (about 1,300 model classes, 1.5 s on a 2-core instance, the first
time any model is parsed). What a first hire still loads is the request path (Kiota's adapter and
middleware, httpx's async backend) and the few request builders and models it writes with
(``WARM_MODULES``, found by diffing ``sys.modules`` around a first hire). ``warm_graph`` imports
them; it parses nothing, so a warm start never holds the interpreter for seconds while the first
invocations run beside it.
"""

from __future__ import annotations

import importlib
from typing import Final

__all__ = ["WARM_MODULES", "warm_graph"]

WARM_MODULES: Final = (
    "_strptime",
    "anyio._backends._asyncio",  # httpx's async backend, loaded on the first async request
    "sniffio",
    "kiota_abstractions.method",
    "kiota_abstractions.request_information",
    "kiota_abstractions.default_query_parameters",
    "msgraph.generated.models.o_data_errors.o_data_error",
    "msgraph.generated.models.reference_create",
    "msgraph.generated.groups.groups_request_builder",
    "msgraph.generated.groups.item.group_item_request_builder",
    "msgraph.generated.groups.item.members.members_request_builder",
    "msgraph.generated.groups.item.members.ref.ref_request_builder",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
)


def warm_graph() -> None:
    """Import the Graph request path a hire uses (``WARM_MODULES``); no request is made."""
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a renamed module in a newer SDK: only the warm-up misses it
            continue
