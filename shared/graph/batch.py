"""JSON ``$batch``: up to 20 Graph requests in one round trip, every sub-response parsed here.

msgraph-sdk's BatchRequestContent drops sub-response bodies (kiota-python#737), so WaveGuard
builds the ``POST /$batch`` body itself and reads ``responses[]`` on its own: status, headers
(a per-item ``Retry-After``, possibly fractional) and the error body. The request goes either
through the Graph client's request adapter (same auth provider and middleware as every other
Graph call) or through an injected ``httpx.AsyncClient`` and base URL (tests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx

from shared.errors import PermanentError, RetryableError, SafetyViolationError, is_retryable_status
from shared.graph.errors import parse_retry_after, to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = [
    "MAX_BATCH_REQUESTS",
    "READ_MAX_WAIT_SECONDS",
    "READ_ROUNDS",
    "BatchClient",
    "BatchRequest",
    "BatchResponse",
    "item_error",
    "version_root",
]

MAX_BATCH_REQUESTS: Final = 20
# send_reads: how many times a throttled or failed read item is sent, and the longest wait between.
READ_ROUNDS: Final = 4
READ_MAX_WAIT_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One sub-request: ``url`` is relative to the version root (``/groups/{id}``)."""

    id: str
    method: str
    url: str
    body: Mapping[str, Any] | None = None
    depends_on: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The item as Graph's ``requests[]`` entry (a body needs its Content-Type header)."""
        item: dict[str, Any] = {"id": self.id, "method": self.method.upper(), "url": self.url}
        headers = dict(self.headers)
        if self.body is not None:
            item["body"] = dict(self.body)
            headers.setdefault("Content-Type", "application/json")
        if headers:
            item["headers"] = headers
        if self.depends_on:
            item["dependsOn"] = list(self.depends_on)
        return item


@dataclass(frozen=True, slots=True)
class BatchResponse:
    """One sub-response: status, headers (lower-cased names) and body."""

    id: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def throttled(self) -> bool:
        """True for 429 (and 503 with Retry-After, which Graph uses the same way)."""
        return self.status == 429 or (self.status == 503 and "retry-after" in self.headers)

    @property
    def retry_after(self) -> float | None:
        """Seconds from this item's own Retry-After header (fractions kept), or None."""
        return parse_retry_after(self.headers.get("retry-after"))

    @property
    def error_code(self) -> str:
        """Graph's ``error.code`` ('' when the body has none)."""
        return str(self._error().get("code") or "")

    @property
    def error_message(self) -> str:
        """Graph's ``error.message`` ('' when the body has none)."""
        return str(self._error().get("message") or "")

    def _error(self) -> Mapping[str, Any]:
        error = self.body.get("error") if isinstance(self.body, Mapping) else None
        return error if isinstance(error, Mapping) else {}


class _Transport(Protocol):
    async def post_batch(self, payload: bytes) -> bytes: ...


class _HttpxTransport:
    """A plain httpx client and base URL (tests, or a client that already adds auth)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/$batch"

    async def post_batch(self, payload: bytes) -> bytes:
        try:
            response = await self._http.post(
                self._url, content=payload, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise RetryableError(f"$batch failed: {type(exc).__name__}", operation="$batch") from exc
        if response.status_code >= 400:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            message = f"$batch answered {response.status_code}"
            if is_retryable_status(response.status_code):
                raise RetryableError(message, retry_after=retry_after, status=response.status_code)
            raise PermanentError(message, status=response.status_code, body=response.text[:300])
        return response.content


def version_root(base_url: str, version: str | None) -> str:
    """``base_url`` (``https://graph.microsoft.com/v1.0``) for another API version (``beta``)."""
    root = base_url.rstrip("/")
    if version is None:
        return root
    head, _, last = root.rpartition("/")
    # Replace the version segment; a base URL without one (a proxy's root) gets it appended.
    return f"{head}/{version}" if last in ("v1.0", "beta") else f"{root}/{version}"


class _AdapterTransport:
    """The Graph client's request adapter: its auth provider and middleware apply."""

    def __init__(self, client: GraphServiceClient, version: str | None = None) -> None:
        self._adapter = client.request_adapter
        self._version = version

    async def post_batch(self, payload: bytes) -> bytes:
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        info = RequestInformation(Method.POST)
        info.url = f"{version_root(str(self._adapter.base_url), self._version)}/$batch"
        info.headers.try_add("Accept", "application/json")
        info.set_stream_content(payload, "application/json")
        try:
            raw: Any = await self._adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        except Exception as exc:
            raise to_waveguard_error(exc, operation="$batch") from exc
        return bytes(raw or b"")


class BatchClient:
    """Sends up to 20 requests per ``POST /$batch`` and returns every sub-response by id."""

    def __init__(self, transport: _Transport) -> None:
        self._transport = transport
        self.round_trips = 0

    @classmethod
    def for_graph(cls, client: GraphServiceClient, *, version: str | None = None) -> BatchClient:
        """Batches through WaveGuard's Graph client (same credential, middleware and guard); its
        base URL's version, or ``version`` (``"beta"``: items are then beta requests)."""
        return cls(_AdapterTransport(client, version))

    @classmethod
    def for_http(cls, http: httpx.AsyncClient, base_url: str) -> BatchClient:
        """Batches through a plain httpx client against ``base_url`` (e.g. ``.../v1.0``)."""
        return cls(_HttpxTransport(http, base_url))

    async def send(self, requests: Sequence[BatchRequest]) -> dict[str, BatchResponse]:
        """Send one batch; every request id gets its sub-response.

        Raises:
            ValueError: no requests, more than 20, or duplicate ids.
            RetryableError: the batch itself was throttled, failed or could not be sent.
            PermanentError: Graph refused the batch or answered something that is not a batch.
        """
        ids = [r.id for r in requests]
        if not ids or len(ids) > MAX_BATCH_REQUESTS or len(set(ids)) != len(ids):
            raise ValueError(f"a $batch takes 1 to {MAX_BATCH_REQUESTS} requests with unique ids")
        payload = json.dumps({"requests": [r.to_json() for r in requests]}).encode()
        self.round_trips += 1
        raw = await self._transport.post_batch(payload)
        responses = _parse(raw)
        missing = [i for i in ids if i not in responses]
        if missing:
            # Graph answers every item; a missing one is treated as a transient server fault.
            raise RetryableError(f"$batch answer lacks items {missing[:5]}", operation="$batch")
        return responses

    async def send_reads(
        self,
        requests: Sequence[BatchRequest],
        *,
        rounds: int = READ_ROUNDS,
        max_wait: float = READ_MAX_WAIT_SECONDS,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> dict[str, BatchResponse]:
        """``send`` for GETs, with the items Graph throttled or failed (408, 429, 5xx) sent again
        in-process, alone, up to ``rounds`` times: after their own ``Retry-After`` (at most
        ``max_wait``), else a short back-off. (Graph's retry middleware sees only the outer batch,
        which answers 200 whatever its items did.) An item still failing is returned as it came.

        Raises:
            ValueError: a request is not a GET (only reads are safe to repeat), or see ``send``.
            RetryableError / PermanentError: the batch itself failed (see ``send``).
        """
        if any(r.method.upper() != "GET" for r in requests):
            raise ValueError("send_reads repeats only GET requests")
        return await self._resend(
            requests,
            await self.send(requests),
            again=lambda a: a.throttled or is_retryable_status(a.status),
            backoff=lambda attempt: min(0.5 * 2 ** (attempt - 1), max_wait),
            rounds=rounds,
            max_wait=max_wait,
            sleep=sleep,
            keep_on_failure=False,
        )

    async def send_writes(
        self,
        requests: Sequence[BatchRequest],
        *,
        rounds: int = READ_ROUNDS,
        max_wait: float = READ_MAX_WAIT_SECONDS,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> dict[str, BatchResponse]:
        """``send`` for writes: only the items Graph throttled (429, or 503 with Retry-After: not
        executed) are sent again, alone, after their own ``Retry-After`` (at most ``max_wait``,
        else 1 s), up to ``rounds`` times. A write that failed otherwise may have happened and is
        never repeated here. A later round whose batch fails leaves its items with their throttled
        answer; the items settled before keep theirs.

        Raises:
            RetryableError / PermanentError: the first batch failed (no item's outcome is known).
            SafetyViolationError: the break-glass guard refused an item (nothing was sent).
        """
        return await self._resend(
            requests,
            await self.send(requests),
            again=lambda a: a.throttled,
            backoff=lambda _: 1.0,
            rounds=rounds,
            max_wait=max_wait,
            sleep=sleep,
            keep_on_failure=True,
        )

    async def _resend(
        self,
        requests: Sequence[BatchRequest],
        answers: dict[str, BatchResponse],
        *,
        again: Callable[[BatchResponse], bool],
        backoff: Callable[[int], float],
        rounds: int,
        max_wait: float,
        sleep: Callable[[float], Awaitable[object]],
        keep_on_failure: bool,
    ) -> dict[str, BatchResponse]:
        """Send the items whose answer calls for it ``again`` once more, alone, up to ``rounds``
        times in all: after their own ``Retry-After`` (at most ``max_wait``), else ``backoff``. With
        ``keep_on_failure``, a round whose batch fails ends the rounds with the answers so far."""
        by_id = {r.id: r for r in requests}
        for attempt in range(1, rounds):
            pending = [a for a in answers.values() if again(a)]
            if not pending:
                break
            waits = [a.retry_after for a in pending if a.retry_after is not None]
            await sleep(min(max(waits), max_wait) if waits else backoff(attempt))
            try:
                answers.update(await self.send([by_id[a.id] for a in pending]))
            except SafetyViolationError:
                raise
            except (RetryableError, PermanentError):
                if not keep_on_failure:
                    raise
                break
        return answers


def item_error(answer: BatchResponse, what: str, **context: Any) -> RetryableError | PermanentError:
    """The error for a failed sub-response: retryable when throttled or a 408/5xx (with its own
    Retry-After), permanent otherwise; ``what`` names the read in the message."""
    message = f"Graph answered {answer.status} to {what}: {answer.error_message}".rstrip(": ")
    if answer.throttled or is_retryable_status(answer.status):
        return RetryableError(message, retry_after=answer.retry_after, status=answer.status, **context)
    return PermanentError(message, status=answer.status, code=answer.error_code, **context)


def _parse(raw: bytes) -> dict[str, BatchResponse]:
    try:
        doc = json.loads(raw)
        items = doc["responses"]
        if not isinstance(items, list):
            raise TypeError("responses is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"$batch answer is not a batch response: {exc}", operation="$batch") from exc
    parsed: dict[str, BatchResponse] = {}
    for item in items:
        if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("status"), int):
            raise PermanentError("$batch answer holds an item without id or status", operation="$batch")
        headers = item.get("headers") or {}
        parsed[str(item["id"])] = BatchResponse(
            id=str(item["id"]),
            status=int(item["status"]),
            headers={str(k).lower(): str(v) for k, v in headers.items()},
            body=item.get("body"),
        )
    return parsed
