"""Conditional Access policies and named locations through WaveGuard's Graph client: list, create,
patch (never delete).

Graph allows the Conditional Access APIs 1 request per second per tenant and sends no
Retry-After with its 429s, so every call here is paced and a 429 is retried with an
exponential backoff of our own. Bodies stay plain JSON (``dict``): the policy baseline is
JSON, and the SDK's models would drop or rename fields the diff has to see.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from shared.errors import PermanentError, RetryableError
from shared.graph.errors import to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["CA_MIN_INTERVAL_SECONDS", "CA_POLICIES_PATH", "NAMED_LOCATIONS_PATH", "ConditionalAccessApi"]

CA_POLICIES_PATH: Final = "/identity/conditionalAccess/policies"
NAMED_LOCATIONS_PATH: Final = "/identity/conditionalAccess/namedLocations"
# Graph's limit is 1 request/s; the margin keeps network jitter from landing two in one second.
CA_MIN_INTERVAL_SECONDS: Final = 1.1
_MAX_PAGES: Final = 100

Sleep = Callable[[float], Awaitable[None]]


class ConditionalAccessApi:
    """List, create and patch CA policies and named locations; one pacer for both (Graph's limit is
    per tenant, on the Conditional Access APIs), one request per ``min_interval`` seconds."""

    def __init__(
        self,
        client: GraphServiceClient,
        *,
        min_interval: float = CA_MIN_INTERVAL_SECONDS,
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._min_interval = min_interval
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._clock = clock
        self._last: float | None = None
        self.requests = 0
        self.throttled = 0

    async def list_policies(self) -> list[dict[str, Any]]:
        """Every CA policy in the tenant (all of them; the caller picks WaveGuard's by name).

        Raises:
            RetryableError: Graph throttled past the retry budget, failed or was unreachable.
            PermanentError: Graph refused the request (e.g. missing Policy.Read.All).
        """
        return await self._list(CA_POLICIES_PATH, "conditional access policies")

    async def list_named_locations(self) -> list[dict[str, Any]]:
        """Every named location in the tenant (``ipNamedLocation`` and ``countryNamedLocation``).

        Raises:
            RetryableError / PermanentError: as for ``list_policies``.
        """
        return await self._list(NAMED_LOCATIONS_PATH, "named locations")

    async def create_named_location(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a named location (``body`` carries its ``@odata.type``); returns it with ``id``.

        Raises:
            InvalidPayloadError / PermanentError: Graph refused it (message says why).
            RetryableError: throttled past the retry budget, failed or unreachable.
        """
        url = self._url(NAMED_LOCATIONS_PATH)
        return await self._send("POST", url, body, operation="create named location")

    async def update_named_location(self, location_id: str, patch: dict[str, Any]) -> None:
        """PATCH a named location; Graph wants the ``@odata.type`` in the body.

        Raises:
            NotFoundError: the named location was deleted meanwhile.
            PermanentError / RetryableError: as for ``create_named_location``.
        """
        url = self._url(f"{NAMED_LOCATIONS_PATH}/{location_id}")
        await self._send("PATCH", url, patch, operation="update named location")

    async def _list(self, path: str, what: str) -> list[dict[str, Any]]:
        url: str | None = self._url(path)
        items: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            if url is None:
                return items
            page = await self._send("GET", url, None, operation=f"list {what}")
            items.extend(v for v in page.get("value", []) if isinstance(v, dict))
            next_link = page.get("@odata.nextLink")
            url = str(next_link) if next_link else None
        raise PermanentError(f"listing {what} did not end after {_MAX_PAGES} pages")

    async def create_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a policy; returns Graph's answer (with ``id``).

        Raises:
            InvalidPayloadError / PermanentError: Graph refused the policy (message says why).
            RetryableError: throttled past the retry budget, failed or unreachable.
        """
        return await self._send("POST", self._url(CA_POLICIES_PATH), body, operation="create CA policy")

    async def update_policy(self, policy_id: str, patch: dict[str, Any]) -> None:
        """PATCH a policy's properties.

        Raises:
            NotFoundError: the policy was deleted meanwhile.
            PermanentError / RetryableError: as for ``create_policy``.
        """
        url = self._url(f"{CA_POLICIES_PATH}/{policy_id}")
        await self._send("PATCH", url, patch, operation="update CA policy")

    def _url(self, path: str) -> str:
        return f"{str(self._client.request_adapter.base_url).rstrip('/')}{path}"

    async def _pace(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._min_interval:
            await self._sleep(self._min_interval - (now - self._last))
        self._last = self._clock()

    async def _send(
        self, method: str, url: str, body: dict[str, Any] | None, *, operation: str
    ) -> dict[str, Any]:
        for attempt in range(1, self._max_attempts + 1):
            await self._pace()
            self.requests += 1
            try:
                raw = await self._raw(method, url, body)
            except Exception as exc:
                error = to_waveguard_error(exc, operation=operation)
                if not _may_retry(error, method) or attempt == self._max_attempts:
                    raise error from exc
                assert isinstance(error, RetryableError)
                self.throttled += _throttled(error)
                # No Retry-After from the CA APIs: back off 2, 4, 8 ... seconds ourselves.
                await self._sleep(error.retry_after or self._backoff * 2 ** (attempt - 1))
                continue
            return json.loads(raw) if raw else {}
        raise AssertionError("unreachable")  # pragma: no cover

    async def _raw(self, method: str, url: str, body: dict[str, Any] | None) -> bytes | None:
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        info = RequestInformation(Method[method])
        info.url = url
        info.headers.try_add("Accept", "application/json")
        # Retries happen in _send, behind the pacer: the middleware's own would skip the pacing.
        info.add_request_options([RetryHandlerOption(delay=0.0, max_retries=0, should_retry=False)])
        if body is not None:
            info.set_stream_content(json.dumps(body).encode(), "application/json")
        adapter = self._client.request_adapter
        result: Any = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        return result if isinstance(result, bytes) else None


def _throttled(error: Exception) -> bool:
    return isinstance(error, RetryableError) and error.context.get("status") == 429


def _may_retry(error: Exception, method: str) -> bool:
    # A write that failed with a 5xx or a timeout may have been applied: only reads are replayed.
    return _throttled(error) or (method == "GET" and isinstance(error, RetryableError))
