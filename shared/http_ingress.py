"""An HTTP request and answer as WaveGuard's ingress logic sees them, independent of Azure Functions,
and the checks every webhook ingress makes before it reads a body (HR, helpdesk)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Final

from shared.errors import FieldError, InvalidPayloadError
from shared.http_problem import PROBLEM_CONTENT_TYPE, problem

__all__ = [
    "MAX_BODY_BYTES",
    "IncomingRequest",
    "IngressResult",
    "bad_request",
    "check_json_request",
    "decode_json",
    "failure",
]

MAX_BODY_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """An HTTP request; header names are matched case-insensitively, ``query`` is URL-decoded."""

    method: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})


@dataclass(frozen=True, slots=True)
class IngressResult:
    """The HTTP answer: status, JSON body (problem JSON for errors) or plain ``text``, extra headers."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None

    @property
    def content_type(self) -> str:
        """``text/plain`` for ``text``, ``application/problem+json`` for errors, else ``application/json``."""
        if self.text is not None:
            return "text/plain"
        return PROBLEM_CONTENT_TYPE if self.status >= 400 else "application/json"

    def body_text(self) -> str:
        """The body: ``text`` as it is, else compact JSON."""
        if self.text is not None:
            return self.text
        return json.dumps(self.body, separators=(",", ":"))


def check_json_request(request: IncomingRequest, *, max_bytes: int = MAX_BODY_BYTES) -> IngressResult | None:
    """415 unless ``Content-Type: application/json`` (charset UTF-8, if given), 413 for a body over
    ``max_bytes``; None when the request may be read."""
    content_type = request.headers.get("content-type", "")
    if not _is_json_content_type(content_type):
        return failure(415, "expected Content-Type: application/json (charset utf-8, if given)")
    if len(request.body) > max_bytes:
        return failure(413, f"the body is {len(request.body)} bytes; at most {max_bytes} are accepted")
    return None


def _is_json_content_type(header: str) -> bool:
    message = Message()
    message["content-type"] = header
    if not header.strip() or message.get_content_type() != "application/json":
        return False
    charset = message.get_param("charset")
    return charset is None or (isinstance(charset, str) and charset.lower() in ("utf-8", "utf8"))


def decode_json(body: bytes) -> object:
    """The body as a JSON value.

    Raises:
        InvalidPayloadError: field ``body``: not UTF-8, not JSON (``NaN`` and ``Infinity`` included),
            or nested too deeply.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayloadError.for_field("body", "not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidPayloadError.for_field("body", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and int-conversion limits
        raise InvalidPayloadError.for_field("body", f"not valid JSON: {exc}") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def bad_request(exc: InvalidPayloadError) -> IngressResult:
    """400 problem JSON naming every bad field of ``exc``."""
    errors = exc.errors or [FieldError(field=exc.field or "body", message=exc.message)]
    return IngressResult(400, problem(400, exc.message, errors=errors))


def failure(status: int, detail: str, *, retry_after: int | None = None) -> IngressResult:
    """A problem answer; ``Retry-After`` when ``retry_after`` is given."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return IngressResult(status, problem(status, detail), headers)
