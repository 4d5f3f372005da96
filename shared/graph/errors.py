"""Microsoft Graph failures (ODataError / APIError / transport) mapped to WaveGuard's errors.

Nothing here imports msgraph: ODataError is recognised through kiota's ``APIError`` base and
the shape of its ``error`` attribute, so HTTP ingress can import this module cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from shared.errors import (
    NotFoundError,
    PermanentError,
    RetryableError,
    WaveGuardError,
    is_retryable_status,
)

__all__ = [
    "GraphErrorInfo",
    "delete_if_present",
    "graph_error_info",
    "parse_retry_after",
    "to_waveguard_error",
]


@dataclass(frozen=True, slots=True)
class GraphErrorInfo:
    """What a failed Graph call said: HTTP status, Graph error code and message, Retry-After."""

    status: int | None
    code: str | None
    message: str | None
    retry_after: float | None
    request_id: str | None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: seconds (possibly fractional, ``2.128``) or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return max(0.0, seconds)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)  # httpx.Headers is case-insensitive
        if value is not None:
            return str(value)
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


def graph_error_info(exc: BaseException) -> GraphErrorInfo | None:
    """The Graph details of a kiota ``APIError`` (msgraph's ``ODataError``), or None for other errors."""
    from kiota_abstractions.api_error import APIError

    if not isinstance(exc, APIError):
        return None
    error = getattr(exc, "error", None)
    headers = exc.response_headers
    return GraphErrorInfo(
        status=exc.response_status_code,
        code=getattr(error, "code", None),
        message=getattr(error, "message", None) or exc.message,
        retry_after=parse_retry_after(_header(headers, "Retry-After")),
        request_id=_header(headers, "request-id") or _header(headers, "client-request-id"),
    )


def to_waveguard_error(exc: BaseException, *, operation: str | None = None) -> WaveGuardError:
    """Our error for a failed Graph call: 404 -> NotFoundError; 408/429/5xx, timeouts and
    transport failures -> RetryableError (with Retry-After); other 4xx -> PermanentError.

    Unknown exceptions are retryable, so the poison queue rather than a silent settle catches them.
    """
    if isinstance(exc, WaveGuardError):
        return exc
    where = f" during {operation}" if operation else ""
    info = graph_error_info(exc)
    if info is not None:
        return _from_graph(info, where, operation)
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"Graph timed out{where}", operation=operation)
    if isinstance(exc, httpx.TransportError):
        return RetryableError(f"Graph unreachable{where}: {type(exc).__name__}", operation=operation)
    from azure.core.exceptions import ClientAuthenticationError

    if isinstance(exc, ClientAuthenticationError):
        # The managed identity endpoint can fail transiently; a bad setup shows up as repeats + poison.
        return RetryableError(
            f"could not get a Graph token{where}: {type(exc).__name__}", operation=operation
        )
    return RetryableError(
        f"unexpected failure calling Graph{where}: {type(exc).__name__}", operation=operation
    )


def _from_graph(info: GraphErrorInfo, where: str, operation: str | None) -> WaveGuardError:
    status = info.status
    summary = f"Graph answered {status if status is not None else 'an error'}{where}"
    if info.code:
        summary += f": {info.code}"
    if info.message:
        summary += f" ({info.message})"
    context: dict[str, Any] = {"status": status, "code": info.code, "request_id": info.request_id}
    if operation:
        context["operation"] = operation
    if status == 404:
        return NotFoundError(summary, **context)
    if status is None or is_retryable_status(status):
        return RetryableError(summary, retry_after=info.retry_after, **context)
    return PermanentError(summary, **context)


async def delete_if_present(call: Awaitable[Any], *, operation: str) -> bool:
    """Await a Graph DELETE; False when the object was already gone (so a replay is a success).

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    try:
        await call
    except Exception as exc:
        err = to_waveguard_error(exc, operation=operation)
        if isinstance(err, NotFoundError):
            return False
        raise err from exc
    return True
