"""The versioned queue message envelope: transport metadata around a business payload.

On the wire (see docs/architecture.md, 'Queue envelope')::

    {"id": "...", "type": "employee.hired", "version": 1, "occurredAt": "2026-12-01T08:00:00Z",
     "traceparent": "00-...-...-01", "payload": {...}}

``id`` is the idempotency key of every side effect the message causes, so a replayed message is
recognised. Unknown top-level fields are ignored (forward compatible within a version); a
version newer than this code understands is a permanent error, never a retry loop.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from shared.errors import FieldError, InvalidPayloadError

__all__ = [
    "CURRENT_VERSION",
    "MAX_QUEUE_MESSAGE_BYTES",
    "Envelope",
    "base64_size",
    "format_timestamp",
]

CURRENT_VERSION: Final = 1
# Azure Storage queue messages hold at most 64 KiB, measured after our base64 encoding.
MAX_QUEUE_MESSAGE_BYTES: Final = 64 * 1024
MAX_ID_LENGTH: Final = 200
MAX_TYPE_LENGTH: Final = 100

_TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
_TRACEPARENT_PATTERN = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def _new_id() -> str:
    return uuid.uuid4().hex


def _utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix; microseconds only when non-zero."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def base64_size(byte_count: int) -> int:
    """Length of the base64 text for ``byte_count`` bytes (what the queue stores)."""
    return 4 * math.ceil(byte_count / 3)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A queue message: ``type`` and ``payload`` are the business part, the rest is transport."""

    type: str
    payload: dict[str, Any]
    id: str = field(default_factory=_new_id)
    version: int = CURRENT_VERSION
    occurred_at: datetime = field(default_factory=_utcnow)
    traceparent: str | None = None

    def __post_init__(self) -> None:
        problems = _check_fields(self.id, self.type, self.version, self.payload)
        if self.occurred_at.tzinfo is None:
            problems.append(FieldError(field="occurredAt", message="must be timezone-aware (UTC)"))
        if problems:
            raise _invalid(problems)
        # Normalise to UTC so equality and the wire form agree whatever zone the caller used.
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
        if self.traceparent is not None and not _TRACEPARENT_PATTERN.match(self.traceparent):
            object.__setattr__(self, "traceparent", None)

    def to_dict(self) -> dict[str, Any]:
        """The wire form as a dict (camelCase keys)."""
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurredAt": format_timestamp(self.occurred_at),
            "traceparent": self.traceparent,
            "payload": self.payload,
        }

    def to_json(self) -> str:
        """Compact ASCII JSON (ASCII keeps the text valid in XML and for any payload string).

        Raises:
            InvalidPayloadError: the payload holds something JSON cannot represent.
        """
        try:
            return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidPayloadError.for_field("payload", f"not JSON-serialisable: {exc}") from exc

    def to_queue_text(self) -> str:
        """``to_json()`` after checking the message fits a storage queue once base64-encoded.

        Raises:
            InvalidPayloadError: the payload is not JSON-serialisable or the message is too large.
        """
        text = self.to_json()
        encoded = base64_size(len(text.encode("utf-8")))
        if encoded > MAX_QUEUE_MESSAGE_BYTES:
            raise InvalidPayloadError.for_field(
                "payload",
                f"message is {encoded} bytes after base64; a storage queue message holds at most "
                f"{MAX_QUEUE_MESSAGE_BYTES} bytes (store large data elsewhere and send a reference)",
                envelope_id=self.id,
            )
        return text

    @classmethod
    def from_json(cls, text: str | bytes | bytearray) -> Envelope:
        """Parse and validate a wire envelope.

        Raises:
            InvalidPayloadError: the text is not JSON, a field is missing or invalid, or the
                version is newer than this code understands; ``errors`` names every bad field.
        """
        data = _parse_object(text)
        problems = _check_wire(data)
        occurred_at = _parse_timestamp(data.get("occurredAt"))
        if problems or occurred_at is None:
            raw_id = data.get("id")
            envelope_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LENGTH else None
            raise _invalid(problems, envelope_id=envelope_id)
        return cls(
            id=data["id"],
            type=data["type"],
            version=data["version"],
            occurred_at=occurred_at,
            traceparent=data.get("traceparent"),
            payload=data["payload"],
        )


def _invalid(problems: list[FieldError], **context: Any) -> InvalidPayloadError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidPayloadError(f"invalid envelope: {summary}", errors=problems, **context)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _parse_finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _parse_object(text: str | bytes | bytearray) -> dict[str, Any]:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid([FieldError(field="body", message=f"not UTF-8 text ({exc.reason})")]) from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_finite_float)
    except RecursionError as exc:
        raise _invalid([FieldError(field="body", message="JSON nested too deeply")]) from exc
    except ValueError as exc:  # JSONDecodeError, and int/float conversion limits
        raise _invalid([FieldError(field="body", message=f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise _invalid([FieldError(field="body", message=f"expected a JSON object, got {_json_type(data)}")])
    return data


def _check_wire(data: dict[str, Any]) -> list[FieldError]:
    problems: list[FieldError] = []
    for name in ("id", "type", "version", "occurredAt", "payload"):
        if name not in data:
            problems.append(FieldError(field=name, message="is required"))
    if problems:
        return problems
    problems = _check_fields(data["id"], data["type"], data["version"], data["payload"])
    occurred = data["occurredAt"]
    if not isinstance(occurred, str):
        problems.append(
            FieldError(field="occurredAt", message=f"expected a string, got {_json_type(occurred)}")
        )
    elif _parse_timestamp(occurred) is None:
        problems.append(
            FieldError(
                field="occurredAt",
                message="expected an ISO-8601 timestamp with a zone, e.g. 2026-12-01T08:00:00Z",
            )
        )
    traceparent = data.get("traceparent")
    if traceparent is not None and not isinstance(traceparent, str):
        problems.append(
            FieldError(
                field="traceparent", message=f"expected a string or null, got {_json_type(traceparent)}"
            )
        )
    return problems


def _check_fields(id_: object, type_: object, version: object, payload: object) -> list[FieldError]:
    problems: list[FieldError] = []
    if not isinstance(id_, str) or not id_.strip():
        problems.append(FieldError(field="id", message="expected a non-empty string"))
    elif len(id_) > MAX_ID_LENGTH or not id_.isprintable():
        problems.append(
            FieldError(field="id", message=f"expected at most {MAX_ID_LENGTH} printable characters")
        )
    if not isinstance(type_, str) or not _TYPE_PATTERN.match(type_) or len(type_) > MAX_TYPE_LENGTH:
        problems.append(
            FieldError(
                field="type",
                message="expected a message type such as 'employee.hired' (letters, digits, . _ : -)",
            )
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(FieldError(field="version", message="expected a positive integer"))
    elif version > CURRENT_VERSION:
        problems.append(
            FieldError(
                field="version",
                message=f"unsupported version {version}; this worker understands {CURRENT_VERSION}",
            )
        )
    if not isinstance(payload, dict):
        problems.append(
            FieldError(field="payload", message=f"expected a JSON object, got {_json_type(payload)}")
        )
    return problems


def _parse_timestamp(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        return None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
