"""The canonical helpdesk ticket and its parser: the one shape every service desk maps to.

On the wire (camelCase)::

    {"id": "INC-1042", "requesterUserPrincipalName": "ada@contoso.com", "category": "MFA",
     "tags": ["authenticator"], "state": "open", "createdAt": "2026-03-02T09:15:00Z",
     "updatedAt": "2026-03-02T09:15:00Z", "closedAt": null}

``updatedAt`` orders deliveries of one ticket: a delivery not newer than the stored one changes
nothing (a replay, or a late retry of an older state). Unknown keys are ignored.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import FieldError, InvalidPayloadError, field_errors_of
from shared.hr.events import Timestamp, Upn

__all__ = ["MAX_ENCODED_CHARS", "TICKET_STATES", "Ticket", "TicketState", "parse_ticket"]

TicketState = Literal["open", "closed", "deleted"]
TICKET_STATES: Final[tuple[str, ...]] = ("open", "closed", "deleted")
_MAX_ID: Final = 128
_MAX_TEXT: Final = 128
_MAX_TAGS: Final = 50
# The ticket as JSON (non-ASCII escaped, as the state store counts it) at most this long: the row
# kept adds its source, mfaRelated and receivedAt and must stay under the store's 30,000 characters.
MAX_ENCODED_CHARS: Final = 24_000


def _digits(value: Any) -> Any:
    # Service desks number their tickets; a JSON integer is the same id as its digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


TicketId = Annotated[
    str, BeforeValidator(_digits), Field(min_length=1, max_length=_MAX_ID, pattern=r"^\S(.*\S)?$")
]
Text = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]


class Ticket(BaseModel):
    """One canonical ticket (what the store keeps, with its source and whether it is about MFA)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    id: TicketId
    requester_user_principal_name: Upn
    category: Text | None = None
    tags: Annotated[tuple[Text, ...], Field(max_length=_MAX_TAGS)] = ()
    state: TicketState
    created_at: Timestamp
    updated_at: Timestamp | None = None
    closed_at: Timestamp | None = None

    @property
    def version(self) -> datetime:
        """When this state of the ticket was true: ``updatedAt``, else ``closedAt``, else ``createdAt``."""
        return self.updated_at or self.closed_at or self.created_at

    def to_payload(self) -> dict[str, Any]:
        """The wire form (camelCase, absent fields omitted) as a JSON-ready dict."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_ticket(obj: object) -> Ticket:
    """Validate a decoded JSON value as a canonical ticket.

    Raises:
        InvalidPayloadError: ``obj`` is not a valid ticket; ``errors`` names every bad field
            (``requesterUserPrincipalName``, ``closedAt``, ...). Nothing else is raised.
    """
    if not isinstance(obj, dict):
        raise _invalid([FieldError(field="body", message="expected a JSON object")])
    if isinstance(obj.get("tags"), list):  # strict mode reads a JSON array as a tuple only from a list
        obj = {**obj, "tags": tuple(obj["tags"])}
    try:
        ticket = Ticket.model_validate(obj)
    except ValidationError as exc:
        raise _invalid(field_errors_of(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: never leak another type
        problem = FieldError(field="body", message=f"not a valid ticket ({type(exc).__name__})")
        raise _invalid([problem]) from None
    problems = _rule_errors(ticket)
    encoded = len(json.dumps(ticket.to_payload(), separators=(",", ":")))
    if encoded > MAX_ENCODED_CHARS:
        # Only the tags can make it this large (every other field is bounded far below it).
        message = f"the ticket is {encoded} characters as JSON, at most {MAX_ENCODED_CHARS}"
        message += ": fewer or shorter tags"
        problems.append(FieldError(field="tags", message=message))
    if problems:
        raise _invalid(problems)
    return ticket


def _rule_errors(ticket: Ticket) -> list[FieldError]:
    problems: list[FieldError] = []
    for name, moment in (("updatedAt", ticket.updated_at), ("closedAt", ticket.closed_at)):
        if moment is not None and moment < ticket.created_at:
            problems.append(FieldError(field=name, message="is before createdAt"))
    if ticket.closed_at is not None and ticket.state == "open":
        problems.append(FieldError(field="closedAt", message="only valid when state is closed or deleted"))
    return problems


def _invalid(problems: list[FieldError]) -> InvalidPayloadError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return InvalidPayloadError(f"invalid ticket: {summary}", errors=problems)
