"""The sender mailbox's sending budget: messages per minute and recipients per rolling day.

Exchange Online lets one mailbox send 30 messages a minute and reach 10,000 recipients a day; a
sender over either gets its messages refused or delayed. Announcements take tokens here before
each batch (the plan's ``communications.budget``), so a 10,000-member wave is spread over ticks
instead of being refused. The record is shared by every process (KV, conditional writes): two
ticks, or a tick and `waveguard waves announce`, never send more than the budget between them.

KV ``mail-budget``/``<sender, case-folded>``: ``{"recent": [epoch seconds of each message in the
last minute], "hours": {"yyyy-mm-ddThh": messages}}`` (the last 25 hourly buckets: the day
counted is always at least 24 hours).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.config.communications import MailBudget
from shared.state import AsyncKeyValuePort, ConcurrencyError

__all__ = ["MAIL_BUDGET_NAMESPACE", "Grant", "restamp_mail_budget", "take_mail_budget"]

log = logging.getLogger(__name__)

MAIL_BUDGET_NAMESPACE: Final = "mail-budget"
_ATTEMPTS: Final = 8
_HOURS: Final = 25


@dataclass(frozen=True, slots=True)
class Grant:
    """How many messages may be sent now; when none, how long until the next one may."""

    granted: int
    wait_seconds: float = 0.0
    day_exhausted: bool = False


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


async def take_mail_budget(
    kv: AsyncKeyValuePort, sender: str, budget: MailBudget, wanted: int, *, now: datetime
) -> Grant:
    """Reserve up to ``wanted`` messages from ``sender``'s budget (they count whether or not they
    are then sent: conservative).

    Raises:
        RetryableError: the store is unavailable.
    """
    key = sender.casefold()
    stamp = now.timestamp()
    oldest_hour = _hour(now - timedelta(hours=_HOURS - 1))
    for _ in range(_ATTEMPTS):
        stored = await kv.get(MAIL_BUDGET_NAMESPACE, key)
        value: Any = stored.value if stored is not None else {}
        try:
            recent = sorted(float(t) for t in value.get("recent", []) if stamp - 60 < float(t) <= stamp)
            hours = {str(h): int(n) for h, n in dict(value.get("hours", {})).items() if str(h) >= oldest_hour}
        except (AttributeError, TypeError, ValueError):
            # A record no writer of this module made: counted as empty (and rewritten by this
            # grant), never a reason to stop the tick.
            log.warning("mail budget record unreadable; counted as empty", extra={"sender": key})
            recent, hours = [], {}
        minute_free = budget.per_minute - len(recent)
        day_free = budget.per_day - sum(hours.values())
        granted = max(0, min(wanted, minute_free, day_free))
        if granted == 0:
            if day_free <= 0:
                first = min(hours) if hours else _hour(now)
                leaves = datetime.strptime(first, "%Y-%m-%dT%H").replace(tzinfo=now.tzinfo)
                wait = (leaves + timedelta(hours=_HOURS) - now).total_seconds()
                return Grant(0, max(1.0, wait), day_exhausted=True)
            return Grant(0, max(0.5, recent[0] + 60 - stamp) if recent else 1.0)
        hours[_hour(now)] = hours.get(_hour(now), 0) + granted
        record = {"recent": [*recent, *([stamp] * granted)], "hours": hours}
        try:
            await kv.put(
                MAIL_BUDGET_NAMESPACE,
                key,
                record,
                if_match=stored.etag if stored is not None else None,
                if_absent=stored is None,
            )
        except ConcurrencyError:
            continue
        return Grant(granted)
    return Grant(0, 1.0)  # contended: try again shortly


async def restamp_mail_budget(
    kv: AsyncKeyValuePort, sender: str, *, taken_at: datetime, count: int, sent_at: datetime
) -> None:
    """Move ``count`` of the minute stamps a grant took at ``taken_at`` to ``sent_at``, when its
    batch had gone out: the minute window counts messages from when they were sent, so a batch
    that took 50 s does not let the next grant come 10 s after its last message. Best effort: a
    record that cannot be read, or keeps changing, keeps the grant's stamps.

    Raises:
        RetryableError: the store is unavailable.
    """
    if count <= 0 or sent_at <= taken_at:
        return
    key, old, new = sender.casefold(), taken_at.timestamp(), sent_at.timestamp()
    for _ in range(_ATTEMPTS):
        stored = await kv.get(MAIL_BUDGET_NAMESPACE, key)
        if stored is None or not isinstance(stored.value, dict):
            return
        try:
            recent = [float(t) for t in stored.value.get("recent", [])]
        except (TypeError, ValueError):
            return
        moved, out = 0, []
        for t in recent:
            if moved < count and t == old:
                out.append(new)
                moved += 1
            else:
                out.append(t)
        if not moved:
            return
        try:
            await kv.put(MAIL_BUDGET_NAMESPACE, key, {**stored.value, "recent": out}, if_match=stored.etag)
        except ConcurrencyError:
            continue
        return
