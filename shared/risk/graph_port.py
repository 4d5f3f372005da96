"""The Graph calls the risk poller makes, behind a small port, paced for Identity Protection.

Identity Protection allows about one request per second per tenant, shared with every other app,
and its 429s may carry no ``Retry-After``. Every ``/identityProtection/`` call therefore waits for
its turn (one per ``spacing`` seconds in this process) and a 429 is retried here with exponential
back-off and jitter when Graph names no wait; other paths (users, sign-ins) are not paced.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from shared.errors import RetryableError

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["GraphPort", "IdentityProtectionPacer", "RawCall", "client_port", "iter_pages"]

IDENTITY_PROTECTION: Final = "/identityProtection/"
_MAX_PAGES: Final = 200
_ATTEMPTS: Final = 5


class GraphPort(Protocol):
    """GET and POST a Graph path (relative to ``/v1.0``): parsed JSON, None on 404."""

    async def get(self, path: str) -> dict[str, Any] | None: ...

    async def post(self, path: str, body: Any) -> dict[str, Any] | None: ...


RawCall = Callable[[str, str, Any], Awaitable[dict[str, Any] | None]]


class IdentityProtectionPacer:
    """One Identity Protection call per ``spacing`` seconds in this process; 429s backed off here."""

    def __init__(
        self,
        call: RawCall,
        *,
        spacing: float = 1.0,
        base_backoff: float = 2.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call = call
        self._spacing = spacing
        self._base = base_backoff
        self._max = max_backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._next_at = 0.0
        self.calls = 0
        self.throttled = 0

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self._request("GET", path, None)

    async def post(self, path: str, body: Any) -> dict[str, Any] | None:
        return await self._request("POST", path, body)

    async def _request(self, method: str, path: str, body: Any) -> dict[str, Any] | None:
        if IDENTITY_PROTECTION not in path.split("?")[0] + "/":
            self.calls += 1
            return await self._call(method, path, body)
        for attempt in range(_ATTEMPTS):
            await self._turn()
            try:
                self.calls += 1
                return await self._call(method, path, body)
            except RetryableError as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                self.throttled += 1
                wait = exc.retry_after
                if wait is None:  # Identity Protection's 429 may name no wait: back off ourselves
                    wait = min(self._max, self._base * 2**attempt) * random.uniform(0.8, 1.2)
                self._push(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _turn(self) -> None:
        async with self._lock:
            now = self._monotonic()
            wait = self._next_at - now
            if wait > 0:
                await self._sleep(wait)
            self._next_at = max(now, self._next_at) + self._spacing

    def _push(self, seconds: float) -> None:
        self._next_at = max(self._next_at, self._monotonic() + seconds)


async def iter_pages(port: GraphPort, path: str, *, base_url: str = "") -> AsyncIterator[dict[str, Any]]:
    """Every item of a paged Graph collection (``@odata.nextLink`` followed, at most 200 pages)."""
    next_path: str | None = path
    for _ in range(_MAX_PAGES):
        if next_path is None:
            return
        page = await port.get(next_path) or {}
        for item in page.get("value", []):
            if isinstance(item, dict):
                yield item
        link = page.get("@odata.nextLink")
        next_path = _relative(str(link), base_url) if link else None


def _relative(link: str, base_url: str) -> str:
    if base_url and link.startswith(base_url):
        return link[len(base_url) :]
    marker = "/v1.0"
    index = link.find(marker)
    return link[index + len(marker) :] if index >= 0 else link


def client_port(graph: GraphServiceClient, *, spacing: float = 1.0) -> IdentityProtectionPacer:
    """The port over WaveGuard's Graph client (auth, retries, the break-glass guard), paced."""
    from shared.graph.client import request_json

    async def call(method: str, path: str, body: Any) -> dict[str, Any] | None:
        return await request_json(graph, method, path, body, operation=f"{method} {path.split('?')[0]}")

    return IdentityProtectionPacer(call, spacing=spacing)
