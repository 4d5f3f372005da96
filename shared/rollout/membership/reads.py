"""Bulk directory reads for the sync, as plain JSON through the Graph client's request adapter.

msgraph-sdk builds a model per object (about 6 ms per user here: 50,000 users would take five
minutes just to parse); the sync needs four fields, so it pages the raw JSON itself. The adapter
is the same one every Graph call uses (auth provider, retry middleware, timeouts).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.errors import PermanentError
from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["iter_member_ids", "iter_member_rows", "iter_user_rows"]


async def _pages(client: GraphServiceClient, path: str, operation: str) -> AsyncIterator[dict[str, Any]]:
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    adapter = client.request_adapter
    url: str | None = f"{str(adapter.base_url).rstrip('/')}{path}"
    while url:
        info = RequestInformation(Method.GET)
        info.url = url
        info.headers.try_add("Accept", "application/json")
        try:
            raw: Any = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
            page = json.loads(raw or b"{}")
        except ValueError as exc:
            raise PermanentError(f"{operation}: Graph answered something that is not JSON") from exc
        except Exception as exc:
            raise to_waveguard_error(exc, operation=operation) from exc
        for item in page.get("value") or []:
            if isinstance(item, dict):
                yield item
        url = page.get("@odata.nextLink")


async def iter_user_rows(client: GraphServiceClient, select: Sequence[str]) -> AsyncIterator[dict[str, Any]]:
    """Every user as a dict of the selected fields, paged to the end.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    async for row in _pages(client, f"/users?$select={quote(','.join(select))}&$top=999", "list users"):
        yield row


async def iter_member_ids(client: GraphServiceClient, group_id: str) -> AsyncIterator[str]:
    """The object id of every direct member of a group, paged to the end.

    Raises:
        NotFoundError: the group does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
    """
    async for row in _pages(client, f"/groups/{quote(group_id)}/members?$select=id&$top=999", "list members"):
        if row.get("id"):
            yield str(row["id"])


async def iter_member_rows(
    client: GraphServiceClient, group_id: str, select: Sequence[str]
) -> AsyncIterator[dict[str, Any]]:
    """Every direct member of a group as a dict of the selected fields, paged to the end.

    Raises:
        NotFoundError: the group does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
    """
    path = f"/groups/{quote(group_id)}/members?$select={quote(','.join(select))}&$top=999"
    async for row in _pages(client, path, "list members"):
        if row.get("id"):
            yield row
