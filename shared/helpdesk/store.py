"""Where tickets live: one ``wgstate`` row per ticket, in a namespace per UTC day of its creation.

Namespace ``helpdesk-tickets-<yyyy-mm-dd>`` (the day of ``createdAt``), key ``<source>:<ticket id>``.
Only MFA-related tickets are kept (a ticket already kept stays, marked as no longer MFA-related, when
a later update re-files it), so the store holds what the gate counts and little else. The gate reads
the days of its window, one partition query each, and never older days.

Writes are conditional: a new ticket is inserted only if absent (tried first: a new ticket costs one
round trip), a known one replaced only under the ETag it was read with and only by a newer
``updatedAt``. A replay, or a late retry of an older state, changes nothing; two deliveries racing
both re-read, and the newer wins.

Retention: a ticket created more than ``RETENTION`` ago (the longest window a plan may set, plus
slack) can count in no window, so it is not kept (``ignored``) and the rollout timer deletes the
days older than that (``prune_tickets``: a watermark row, a bounded number of rows per tick).
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
    "MAX_CLOCK_SKEW",
    "MAX_TICKETS_PER_DAY",
    "MAX_TICKET_WINDOW_DAYS",
    "PRUNE_NAMESPACE",
    "RETENTION",
    "TICKETS_NAMESPACE_PREFIX",
    "Outcome",
    "StoredTicket",
    "TicketRead",
    "is_expired",
    "prune_tickets",
    "read_tickets",
    "record_ticket",
    "tickets_namespace",
]

log = logging.getLogger(__name__)

TICKETS_NAMESPACE_PREFIX: Final = "helpdesk-tickets-"
# Rows read per day of the window: far more MFA tickets than a day of any rollout raises. A day
# holding more is reported as truncated (the gate fails on it), never silently undercounted.
MAX_TICKETS_PER_DAY: Final = 5000
# The longest ticketWindowDays a plan may set (shared/config/waves.py, Gates.ticket_window_days).
MAX_TICKET_WINDOW_DAYS: Final = 60
# Tickets created longer ago count in no window: not kept, and their days deleted.
RETENTION: Final = timedelta(days=MAX_TICKET_WINDOW_DAYS + 2)
# How far ahead of our clock a sender's createdAt may be (its clock, or ours, off).
MAX_CLOCK_SKEW: Final = timedelta(hours=1)
# The last day whose tickets were deleted: {"through": "yyyy-mm-dd"}.
PRUNE_NAMESPACE: Final = "helpdesk-retention"
PRUNE_KEY: Final = "pruned"
PRUNE_PER_TICK: Final = 500  # rows deleted per timer tick at most
_PRUNE_DAYS_PER_TICK: Final = 31  # day partitions visited per tick at most
_PRUNE_FIRST_LOOKBACK: Final = timedelta(days=30)  # where the first prune starts (no watermark yet)
_ATTEMPTS: Final = 5


class Outcome(StrEnum):
    """What a delivery did to the store."""

    STORED = "stored"  # a new MFA-related ticket
    UPDATED = "updated"  # a newer state of a kept ticket
    UNCHANGED = "unchanged"  # a replay or an older state: nothing written
    IGNORED = "ignored"  # not MFA-related and not kept, or created too long ago: nothing written


@dataclass(frozen=True, slots=True)
class StoredTicket:
    """A kept ticket as the gate reads it."""

    source: str
    id: str
    requester: str  # the requester's UPN (or e-mail address), case-folded
    mfa_related: bool
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TicketRead:
    """The kept tickets of a window, and the days that held more than ``MAX_TICKETS_PER_DAY`` (read
    in part: a figure over them would undercount)."""

    tickets: tuple[StoredTicket, ...] = ()
    truncated: tuple[date, ...] = ()


def tickets_namespace(day: date) -> str:
    """The namespace of the tickets created on ``day`` (UTC)."""
    return f"{TICKETS_NAMESPACE_PREFIX}{day.isoformat()}"


def is_expired(ticket: Ticket, *, now: datetime) -> bool:
    """Whether ``ticket`` was created more than ``RETENTION`` ago: it counts in no gate window."""
    return ticket.created_at < now - RETENTION


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

    An MFA-related ticket is inserted if absent first, read only when it exists. A ticket created
    more than ``RETENTION`` ago, and a not-MFA-related ticket in its first state (``updatedAt`` =
    ``createdAt``: a kept row of it is at least as new, so nothing could be written), are ignored
    without touching the store.

    Raises:
        InvalidPayloadError: the row would be larger than the store takes.
        RetryableError: the store is unavailable, or the row kept changing under us.
    """
    if is_expired(ticket, now=now) or (not mfa_related and ticket.version <= ticket.created_at):
        return Outcome.IGNORED
    namespace, key = tickets_namespace(ticket.created_at.date()), f"{source}:{ticket.id}"
    record = _record(ticket, source=source, mfa_related=mfa_related, received_at=now)
    insert = mfa_related
    for _ in range(_ATTEMPTS):
        try:
            if insert:
                await kv.put(namespace, key, record, if_absent=True)
                return Outcome.STORED
            stored = await kv.get(namespace, key)
            if stored is None:
                if not mfa_related:
                    return Outcome.IGNORED
                insert = True  # deleted since it was seen: insert again
                continue
            kept = parse_iso(stored.value.get("updatedAt")) if isinstance(stored.value, dict) else None
            if kept is not None and ticket.version <= kept:
                return Outcome.UNCHANGED
            await kv.put(namespace, key, record, if_match=stored.etag)
            return Outcome.UPDATED
        except ConcurrencyError:
            insert = False  # kept already, or another delivery won the write: read it
    raise RetryableError(f"ticket {key} kept changing while it was written; retry later")


async def read_tickets(kv: AsyncKeyValuePort, *, since: datetime, until: datetime) -> TicketRead:
    """The kept tickets created from ``since`` to ``until`` (one query per UTC day), and the days
    that held more than ``MAX_TICKETS_PER_DAY`` of them.

    Raises:
        RetryableError: the store is unavailable.
    """
    tickets: list[StoredTicket] = []
    truncated: list[date] = []
    day, last = since.date(), until.date()
    while day <= last:
        values = await kv.values(tickets_namespace(day), limit=MAX_TICKETS_PER_DAY + 1)
        if len(values) > MAX_TICKETS_PER_DAY:
            log.warning("helpdesk tickets of %s read in part (more than %d)", day, MAX_TICKETS_PER_DAY)
            truncated.append(day)
        for value in values[:MAX_TICKETS_PER_DAY]:
            ticket = _parse_record(value)
            if ticket is not None and since <= ticket.created_at <= until:
                tickets.append(ticket)
        day += timedelta(days=1)
    return TicketRead(tuple(tickets), tuple(truncated))


async def prune_tickets(kv: AsyncKeyValuePort, *, now: datetime, limit: int = PRUNE_PER_TICK) -> int:
    """Delete the tickets of the days before ``now - RETENTION`` (no window reaches them, and the
    ingress keeps nothing that old, so they only shrink); returns how many rows.

    Bounded: oldest day first from the day after the watermark, at most ``limit`` rows and
    ``_PRUNE_DAYS_PER_TICK`` day reads per call; the watermark moves past each day read whole.
    Without a watermark it starts ``_PRUNE_FIRST_LOOKBACK`` before the cut-off.

    Raises:
        RetryableError: the store is unavailable.
    """
    cutoff = (now - RETENTION).date()
    mark = await kv.get(PRUNE_NAMESPACE, PRUNE_KEY)
    through = (
        _day_of(mark.value.get("through")) if mark is not None and isinstance(mark.value, dict) else None
    )
    day = through + timedelta(days=1) if through is not None else cutoff - _PRUNE_FIRST_LOOKBACK
    deleted, visited, emptied = 0, 0, through
    while day < cutoff and visited < _PRUNE_DAYS_PER_TICK and deleted < limit:
        namespace, wanted = tickets_namespace(day), limit - deleted
        values = await kv.values(namespace, limit=wanted)
        visited += 1
        keys = [key for key in map(_key_of, values) if key is not None]
        if len(keys) < len(values):
            log.warning(
                "%d helpdesk ticket records unreadable; left in %s", len(values) - len(keys), namespace
            )
        for key in keys:
            await kv.delete(namespace, key)
        deleted += len(keys)
        if keys and len(values) >= wanted:
            break  # the day may hold more: the next tick goes on with it
        emptied, day = day, day + timedelta(days=1)
    if emptied is not None and emptied != through:
        await kv.put(PRUNE_NAMESPACE, PRUNE_KEY, {"through": emptied.isoformat()})
    return deleted


def _day_of(raw: object) -> date | None:
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _key_of(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    source, ticket_id = value.get("source"), value.get("id")
    return f"{source}:{ticket_id}" if isinstance(source, str) and isinstance(ticket_id, str) else None


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
