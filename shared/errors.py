"""WaveGuard's exception hierarchy and the one rule that tells retryable from permanent failures.

::

    WaveGuardError                  root; keyword-only context (correlation_id, field, ...)
    ├── RetryableError              transient: throttling (retry_after), 5xx, timeouts, storage down.
    │   │                           The host retries the message after its visibility timeout and
    │   │                           poisons it after maxDequeueCount.
    │   └── BusyError               another worker holds the message's claim: re-sent with a delay
    └── PermanentError              never retried: the message is settled, recorded and alerted on.
        ├── InvalidPayloadError     bad message or request body; carries field errors
        ├── ConfigError             bad config file or environment; names the file and field path
        ├── NotFoundError           the thing the message refers to does not exist
        └── SafetyViolationError    a write would break a break-glass / lock-out safety rule

Subpackages add their own leaves (``shared.state.ConcurrencyError`` is a RetryableError).
``classify`` also sorts foreign exceptions (azure-core, httpx, kiota/msgraph) so a handler can
decide with one call whether to raise for a retry or settle the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "BusyError",
    "ConfigError",
    "ErrorKind",
    "FieldError",
    "InvalidPayloadError",
    "NotFoundError",
    "PermanentError",
    "RetryableError",
    "SafetyViolationError",
    "WaveGuardError",
    "classify",
    "field_errors_from",
    "field_errors_of",
    "is_retryable_status",
    "status_code_of",
    "storage_error",
]

ErrorKind = Literal["retryable", "permanent"]
_HEALED_CODES = frozenset({"QueueNotFound", "TableNotFound"})


class FieldError(TypedDict):
    """One problem with one field of a payload, e.g. ``{"field": "data.employeeId", ...}``."""

    field: str
    message: str


class WaveGuardError(Exception):
    """Root of every error WaveGuard raises on purpose.

    Context is keyword-only so call sites read as documentation:
    ``RetryableError("Graph throttled", retry_after=2.5, correlation_id=msg.id)``.
    Never put secrets or personal data into the context: it is logged and alerted on.
    """

    kind: ErrorKind = "permanent"

    def __init__(
        self,
        message: str,
        *,
        correlation_id: str | None = None,
        field: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.correlation_id = correlation_id
        self.field = field
        self.context: dict[str, Any] = dict(context)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description for logs, audit records and alerts."""
        out: dict[str, Any] = {"error": type(self).__name__, "kind": self.kind, "message": self.message}
        if self.correlation_id is not None:
            out["correlationId"] = self.correlation_id
        if self.field is not None:
            out["field"] = self.field
        out.update(self.context)
        return out


class RetryableError(WaveGuardError):
    """A transient failure: doing the same thing later may succeed."""

    kind: ErrorKind = "retryable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        correlation_id: str | None = None,
        field: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id, field=field, **context)
        # Seconds the remote side asked us to wait (Retry-After); None when it did not say.
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        return out


class BusyError(RetryableError):
    """Another worker holds the idempotency claim of this message (alive, or dead with its claim not
    expired yet). The queue workers re-send the message with ``retry_after`` as its delay and settle
    this delivery, so waiting for a claim never burns the message's dequeue count toward poison."""


class PermanentError(WaveGuardError):
    """A failure that retrying cannot fix: settle, record and alert."""

    kind: ErrorKind = "permanent"


class InvalidPayloadError(PermanentError):
    """A message or request body that is malformed; ``errors`` lists every bad field."""

    def __init__(
        self,
        message: str,
        *,
        errors: Iterable[FieldError] = (),
        correlation_id: str | None = None,
        field: str | None = None,
        **context: Any,
    ) -> None:
        self.errors: list[FieldError] = [FieldError(field=e["field"], message=e["message"]) for e in errors]
        if field is None and len(self.errors) == 1:
            field = self.errors[0]["field"]
        super().__init__(message, correlation_id=correlation_id, field=field, **context)

    @classmethod
    def for_field(cls, field: str, message: str, **context: Any) -> InvalidPayloadError:
        """One bad field: the message reads ``<field>: <message>``."""
        return cls(f"{field}: {message}", errors=[FieldError(field=field, message=message)], **context)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["errors"] = [dict(e) for e in self.errors]
        return out


class ConfigError(PermanentError):
    """Bad configuration; the message names the file (or ``environment``) and the field path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        problems: Iterable[str] = (),
        field: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, field=field, **context)
        self.file = file
        self.problems: list[str] = list(problems) or [message]


class NotFoundError(PermanentError):
    """The user, group or record a message refers to does not exist (after any retry budget)."""


class SafetyViolationError(PermanentError):
    """Refused: the action would break a safety rule (break-glass exclusion, report-only first)."""

    def __init__(self, message: str, *, rule: str, **context: Any) -> None:
        super().__init__(message, rule=rule, **context)
        self.rule = rule


def is_retryable_status(status: int) -> bool:
    """True for HTTP statuses worth retrying: 408, 429 and every 5xx."""
    return status in (408, 429) or 500 <= status <= 599


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status a foreign exception carries (azure-core, kiota/msgraph, httpx), if any."""
    for attr in ("status_code", "response_status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def classify(exc: BaseException) -> ErrorKind:
    """Tell whether retrying ``exc`` may help.

    Our own errors carry their kind. Foreign ones are sorted by what they mean: transport
    failures and timeouts are transient; an HTTP status 408/429/5xx is transient and any
    other 4xx is permanent. Anything unknown is treated as retryable, so the host's
    dequeue count and poison queue catch it rather than a silent settle.
    """
    if isinstance(exc, WaveGuardError):
        return exc.kind
    if _is_transport_failure(exc):
        return "retryable"
    status = status_code_of(exc)
    if status is not None and 400 <= status <= 599:
        return "retryable" if is_retryable_status(status) else "permanent"
    return "retryable"


def _is_transport_failure(exc: BaseException) -> bool:
    # Imported here: errors.py sits under every module (including HTTP ingress) and must stay light.
    import httpx
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    return isinstance(
        exc,
        ServiceRequestError | ServiceResponseError | httpx.TransportError | TimeoutError | ConnectionError,
    )


def storage_error(exc: BaseException, *, operation: str) -> WaveGuardError:
    """Our error for a failed Azure Storage call (queues, tables): retryable unless a definite 4xx."""
    status = status_code_of(exc)
    code = getattr(exc, "error_code", None)
    where = f" (HTTP {status})" if status else ""
    detail = f"storage failed during {operation}: {type(exc).__name__}{where}"
    context: dict[str, Any] = {"operation": operation, "status": status, "code": str(code) if code else None}
    # A queue or table that vanished (deleted, or an account that restarted empty) is created
    # again by the stores: an outage to retry, not a refusal.
    if classify(exc) == "retryable" or str(getattr(code, "value", code)) in _HEALED_CODES:
        return RetryableError(detail, **context)
    return PermanentError(detail, **context)


def field_errors_from(mapping: Mapping[str, str]) -> list[FieldError]:
    """Field errors from a ``{field: message}`` mapping, in mapping order."""
    return [FieldError(field=k, message=v) for k, v in mapping.items()]


def field_errors_of(exc: ValidationError) -> list[FieldError]:
    """Field errors from a pydantic ``ValidationError``, one per error, in pydantic's order.

    The field is the dotted location (``data.employeeId``; ``body`` for the whole input); a missing
    field reads ``is required``, anything else pydantic's message (a validator's own wording).
    """
    problems: list[FieldError] = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = "is required" if error["type"] == "missing" else error["msg"]
        problems.append(FieldError(field=field, message=message))
    return problems
