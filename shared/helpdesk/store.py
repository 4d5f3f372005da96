"""Where tickets live: one ``wgstate`` row per ticket, in a namespace per UTC day of its creation.

Namespace ``helpdesk-tickets-<yyyy-mm-dd>`` (the day of ``createdAt``), key ``<source>:<ticket id>``.
Only MFA-related tickets are kept (a ticket already kept stays, marked as no longer MFA-related, when
a later update re-files it), so the store holds what the gate counts and little else. The gate reads
the days of its window, one partition query each, and never older days.

Writes are conditional: a new ticket is inserted only if absent, a known one replaced only under
the ETag it was read with and only by a newer ``updatedAt``. A replay, or a late retry of an older
state, changes nothing; two deliveries racing both re-read, and the newer wins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from shared.errors import RetryableError
from shared.helpdesk.tickets import Ticket
from shared.state import AsyncKeyValuePort, ConcurrencyError, parse_iso

__all__ = [
    "MAX_TICKETS_PER_DAY",
    "TICKETS_NAMESPACE_PREFIX",
    "Outcome",
    "StoredTicket",
    "read_tickets",
    "record_ticket",
    "tickets_namespace",
]

log = logging.getLogger(__name__)

TICKETS_NAMESPACE_PREFIX: Final = "helpdesk-tickets-"
# Rows read per day of the window: far more MFA tickets than a day of any rollout raises.
MAX_TICKETS_PER_DAY: Final = 5000
_ATTEMPTS: Final = 5


class Outcome(StrEnum):
    """What a delivery did to the store."""

    STORED = "stored"  # a new MFA-related ticket
    UPDATED = "updated"  # a newer state of a kept ticket
    UNCHANGED = "unchanged"  # a replay or an older state: nothing written
    IGNORED = "ignored"  # not MFA-related and not kept: nothing written


@dataclass(frozen=True, slots=True)
class StoredTicket:
    """A kept ticket as the gate reads it."""

    source: str
    id: str
    requester: str  # the requester's UPN, case-folded
    mfa_related: bool
    state: str
    created_at: datetime
    updated_at: datetime


def tickets_namespace(day: date) -> str:
    """The namespace of the tickets created on ``day`` (UTC)."""
    return f"{TICKETS_NAMESPACE_PREFIX}{day.isoformat()}"


def _record(ticket: Ticket, *, source: str, mfa_related: bool, received_at: datetime) -> dict[str, Any]:
    return {
        **ticket.to_payload(),
        "source": source,
        "requesterUserPrincipalName": ticket.requester_user_principal_name.casefold(),
        "updatedAt": ticket.version.isoformat(),
        "mfaRelated": mfa_related,
        "receivedAt": received_at.isoformat(),
    }


async def record_ticket(
    kv: AsyncKeyValuePort, ticket: Ticket, *, source: str, mfa_related: bool, now: datetime
) -> Outcome:
    """Keep this delivery of ``ticket`` if it is MFA-related or updates a kept ticket, and is newer.

    Raises:
        RetryableError: the store is unavailable, or the row kept changing under us.
    """
    namespace, key = tickets_namespace(ticket.created_at.date()), f"{source}:{ticket.id}"
    record = _record(ticket, source=source, mfa_related=mfa_related, received_at=now)
    for _ in range(_ATTEMPTS):
        stored = await kv.get(namespace, key)
        try:
            if stored is None:
                if not mfa_related:
                    return Outcome.IGNORED
                await kv.put(namespace, key, record, if_absent=True)
                return Outcome.STORED
            kept = parse_iso(stored.value.get("updatedAt")) if isinstance(stored.value, dict) else None
            if kept is not None and ticket.version <= kept:
                return Outcome.UNCHANGED
            await kv.put(namespace, key, record, if_match=stored.etag)
            return Outcome.UPDATED
        except ConcurrencyError:
            continue  # another delivery of this ticket won the write: read again
    raise RetryableError(f"ticket {key} kept changing while it was written; retry later")


async def read_tickets(kv: AsyncKeyValuePort, *, since: datetime, until: datetime) -> list[StoredTicket]:
    """The kept tickets created from ``since`` to ``until`` (one query per UTC day).

    Raises:
        RetryableError: the store is unavailable.
    """
    tickets: list[StoredTicket] = []
    day, last = since.date(), until.date()
    while day <= last:
        for value in await kv.values(tickets_namespace(day), limit=MAX_TICKETS_PER_DAY):
            ticket = _parse_record(value)
            if ticket is not None and since <= ticket.created_at <= until:
                tickets.append(ticket)
        day += timedelta(days=1)
    return tickets


def _parse_record(value: object) -> StoredTicket | None:
    if not isinstance(value, dict):
        return None
    created, updated = parse_iso(value.get("createdAt")), parse_iso(value.get("updatedAt"))
    fields: Sequence[object] = (value.get("source"), value.get("id"), value.get("requesterUserPrincipalName"))
    if created is None or updated is None or not all(isinstance(f, str) for f in fields):
        log.warning("helpdesk ticket record unreadable; skipped")
        return None
    return StoredTicket(
        source=str(value["source"]),
        id=str(value["id"]),
        requester=str(value["requesterUserPrincipalName"]),
        mfa_related=value.get("mfaRelated") is True,
        state=str(value.get("state", "open")),
        created_at=created,
        updated_at=updated,
    )
