"""The versioned queue message envelope: transport metadata around a business payload.

On the wire (see docs/architecture.md, 'Queue envelope')::

    {"id": "...", "type": "employee.hired", "version": 1, "occurredAt": "2026-12-01T08:00:00Z",
     "traceparent": "00-...-...-01", "payload": {...}}

``id`` is the idempotency key of every side effect the message causes, so a replayed message is
recognised. Unknown top-level fields are ignored (forward compatible within a version); a
version newer than this code understands is a permanent error, never a retry loop.

``Envelope`` is a frozen pydantic model whose fields each have one plain validator that both
checks and words the problem, so building one in code (Python names: ``occurred_at``) and
``from_json`` (wire names only: ``occurredAt``) raise the same ``InvalidPayloadError``, never a
pydantic ``ValidationError``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.errors import FieldError, InvalidPayloadError, field_errors_of

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

_ID_BLANK: Final = "expected a non-empty string"
_ID_TOO_LONG: Final = f"expected at most {MAX_ID_LENGTH} printable characters"
_TYPE_HINT: Final = "expected a message type such as 'employee.hired' (letters, digits, . _ : -)"
_VERSION_HINT: Final = "expected a positive integer"
_NAIVE: Final = "must be timezone-aware (UTC)"
_TIMESTAMP_HINT: Final = "expected an ISO-8601 timestamp with a zone, e.g. 2026-12-01T08:00:00Z"

# The wire has no defaults: a producer states every one of these.
_WIRE_REQUIRED: Final = ("id", "type", "version", "occurredAt", "payload")
# Errors are reported under the wire names, in this order (a constructor's error for
# ``occurred_at`` is located under the Python name).
_WIRE_NAMES: Final = {"occurred_at": "occurredAt"}
_REPORT_ORDER: Final = {
    name: rank for rank, name in enumerate(("id", "type", "version", "payload", "occurredAt", "traceparent"))
}
# Validation context of ``from_json``: its errors carry the envelope id, when it has a usable one.
_FROM_WIRE: Final = {"wire": True}


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


def _problem(message: str) -> PydanticCustomError:
    # The message goes in the context so braces in it are never read as a template.
    return PydanticCustomError("envelope", "{message}", {"message": message})


def _check_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(_ID_BLANK)
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise _problem(_ID_TOO_LONG)
    return value


def _check_type(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TYPE_LENGTH or not _TYPE_PATTERN.match(value):
        raise _problem(_TYPE_HINT)
    return value


def _check_version(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _problem(_VERSION_HINT)
    if value > CURRENT_VERSION:
        raise _problem(f"unsupported version {value}; this worker understands {CURRENT_VERSION}")
    return value


def _check_occurred_at(value: object) -> datetime:
    # In code: an aware datetime. On the wire: an ISO-8601 string with a zone. Either way UTC, so
    # equality and the wire form agree whatever zone the producer used.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _problem(_NAIVE)
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise _problem(f"expected a string, got {_json_type(value)}")
    moment = _parse_timestamp(value)
    if moment is None:
        raise _problem(_TIMESTAMP_HINT)
    return moment


def _check_payload(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _problem(f"expected a JSON object, got {_json_type(value)}")
    return value  # as given: no copy


def _check_traceparent(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _problem(f"expected a string or null, got {_json_type(value)}")
    # W3C: a malformed traceparent is dropped (a new trace starts), never an error.
    return value if _TRACEPARENT_PATTERN.match(value) else None


class Envelope(BaseModel):
    """A queue message: ``type`` and ``payload`` are the business part, the rest is transport."""

    # Built in code by Python name only; read off the wire (``from_json``) by camelCase name only.
    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=False,
    )

    id: Annotated[str, PlainValidator(_check_id)] = Field(default_factory=_new_id)
    type: Annotated[str, PlainValidator(_check_type)]
    version: Annotated[int, PlainValidator(_check_version)] = CURRENT_VERSION
    occurred_at: Annotated[datetime, PlainValidator(_check_occurred_at)] = Field(default_factory=_utcnow)
    payload: Annotated[dict[str, Any], PlainValidator(_check_payload)]
    traceparent: Annotated[str | None, PlainValidator(_check_traceparent)] = None

    @model_validator(mode="wrap")
    @classmethod
    def _invalid_payload(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        """Raise pydantic's errors as our ``InvalidPayloadError`` (a permanent failure); in code, an
        unknown keyword is a ``TypeError`` as for any constructor (a misspelt ``occurredAt=`` would
        otherwise be dropped silently and the default used)."""
        if info.context is not _FROM_WIRE and isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise TypeError(f"Envelope() got unexpected keyword arguments: {', '.join(unknown)}")
        try:
            return handler(data)
        except ValidationError as exc:
            context = _wire_context(data) if info.context is _FROM_WIRE else {}
            raise _invalid(_problems(exc), **context) from None

    def with_traceparent(self, traceparent: str | None) -> Envelope:
        """A copy carrying ``traceparent``, checked like the field (a malformed one is dropped)."""
        return self.model_copy(update={"traceparent": _check_traceparent(traceparent)})

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
        missing = [name for name in _WIRE_REQUIRED if name not in data]
        if missing:
            problems = [FieldError(field=name, message="is required") for name in missing]
            raise _invalid(problems, **_wire_context(data))
        return cls.model_validate(data, by_alias=True, by_name=False, context=_FROM_WIRE)


def _problems(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as field errors under wire names, in ``_REPORT_ORDER``."""
    problems = [
        FieldError(field=_WIRE_NAMES.get(p["field"], p["field"]), message=p["message"])
        for p in field_errors_of(exc)
    ]
    return sorted(problems, key=lambda p: _REPORT_ORDER.get(p["field"], len(_REPORT_ORDER)))


def _wire_context(data: object) -> dict[str, Any]:
    """Error context for a wire envelope: its id, when usable as one (else None)."""
    raw_id = data.get("id") if isinstance(data, dict) else None
    usable = isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LENGTH
    return {"envelope_id": raw_id if usable else None}


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


def _parse_timestamp(text: str) -> datetime | None:
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
