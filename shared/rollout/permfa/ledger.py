"""The migration ledger: each user's per-user MFA state before WaveGuard changed it, kept so
``permfa rollback`` can put back exactly what was there.

Written ahead: a run records every user it is about to change (``pending``, with the previous
state) before the first Graph write, then each user's outcome. A run killed half-way therefore
leaves ``pending`` entries, and a rollback restores those too (it cannot know whether the write
landed; restoring a state that was never changed is a no-op). Pages of at most 20 users keep each
value far below the store's size limit; they live in namespace ``permfa-ledger-<wave>``, one key
per run and page.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

from shared.errors import PermanentError
from shared.state import AsyncKeyValuePort

__all__ = [
    "LedgerEntry",
    "Outcome",
    "clear_ledger",
    "latest_entries",
    "ledger_namespace",
    "mark",
    "migrated_count",
    "read_ledger",
    "record_outcomes",
    "settle_pages",
    "write_ahead",
]

Outcome = Literal["pending", "disabled", "failed", "restored"]
_OUTCOMES: Final = frozenset(get_args(Outcome))
# Longest Graph detail kept per user: a page must stay far below the store's 30,000 characters.
MAX_DETAIL: Final = 200
PAGE_SIZE: Final = 20
# Pages read back for one wave: 100,000 users' worth.
_MAX_PAGES: Final = 5000


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One user changed (or about to be) by one run."""

    user_id: str
    upn: str
    previous: str
    outcome: Outcome
    run: str
    at: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.user_id, "upn": self.upn, "previous": self.previous}
        row["outcome"] = self.outcome
        if self.detail:
            row["detail"] = self.detail
        return row


def ledger_namespace(wave: str) -> str:
    return f"permfa-ledger-{wave}"


def _key(run: str, page: int) -> str:
    return f"{run}:{page:05d}"


async def write_ahead(
    kv: AsyncKeyValuePort, wave: str, run: str, at: datetime, users: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Record ``(user id, upn, previous state)`` for every user the run will change, as pending;
    returns the pages written (for ``settle_pages``)."""
    pages = []
    for index, start in enumerate(range(0, len(users), PAGE_SIZE)):
        entries = [
            LedgerEntry(uid, upn, previous, "pending", run, at.isoformat())
            for uid, upn, previous in users[start : start + PAGE_SIZE]
        ]
        page = _page(wave, run, at, index, entries)
        await kv.put(ledger_namespace(wave), _key(run, index), page)
        pages.append(page)
    return pages


async def settle_pages(
    kv: AsyncKeyValuePort,
    wave: str,
    pages: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, tuple[Outcome, str]],
) -> None:
    """Write the outcomes into the pages ``write_ahead`` returned (no read back); users without an
    outcome stay pending."""
    for page in pages:
        users = [_settled(dict(u), outcomes) for u in page["users"]]
        if users != page["users"]:
            await kv.put(
                ledger_namespace(wave), _key(str(page["run"]), int(page["page"])), {**page, "users": users}
            )


def _settled(user: dict[str, Any], outcomes: Mapping[str, tuple[Outcome, str]]) -> dict[str, Any]:
    if user["id"] not in outcomes:
        return user
    user["outcome"], detail = outcomes[user["id"]]
    user.pop("detail", None)
    if detail:
        user["detail"] = detail[:MAX_DETAIL]
    return user


async def record_outcomes(
    kv: AsyncKeyValuePort, wave: str, run: str, outcomes: Mapping[str, tuple[Outcome, str]]
) -> None:
    """Set the outcome (and its detail) of the run's users named in ``outcomes``; pages whose users
    are all unnamed are left as they are."""
    namespace = ledger_namespace(wave)
    for index in range(_MAX_PAGES):
        stored = await kv.get(namespace, _key(run, index))
        if stored is None:
            return
        page = dict(stored.value)
        before = list(page.get("users") or [])
        users = [_settled(dict(u), outcomes) for u in before]
        if users != before:
            await kv.put(namespace, _key(run, index), {**page, "users": users})


async def latest_entries(kv: AsyncKeyValuePort, wave: str) -> dict[str, LedgerEntry]:
    """Per user, the entry of the newest run that recorded them (what was there before the last
    change WaveGuard made, or meant to make); unreadable rows are left out (see ``read_ledger``)."""
    return (await read_ledger(kv, wave))[0]


async def read_ledger(kv: AsyncKeyValuePort, wave: str) -> tuple[dict[str, LedgerEntry], list[str]]:
    """``latest_entries`` and the rows that could not be read (never acted on), described.

    Raises:
        PermanentError: the ledger holds more pages than one read returns (nothing is guessed).
    """
    pages = await kv.values(ledger_namespace(wave), limit=_MAX_PAGES + 1)
    if len(pages) > _MAX_PAGES:
        raise PermanentError(
            f"the per-user MFA ledger of wave {wave!r} holds more than {_MAX_PAGES} pages; "
            "WaveGuard does not act on part of it",
            wave=wave,
        )
    good = [p for p in pages if isinstance(p, dict) and isinstance(p.get("users"), list)]
    unreadable = [f"a ledger page that is not a page ({str(p)[:80]})" for p in pages if p not in good]
    good.sort(key=lambda p: (str(p.get("at") or ""), str(p.get("run") or ""), _int(p.get("page"))))
    latest: dict[str, LedgerEntry] = {}
    for page in good:
        for user in page["users"]:
            entry = _entry(user, page)
            if entry is None:
                unreadable.append(f"run {page.get('run')}: an unreadable row ({str(user)[:80]})")
            else:
                latest[entry.user_id] = entry
    return latest, unreadable


def _entry(user: Any, page: Mapping[str, Any]) -> LedgerEntry | None:
    if not isinstance(user, dict):
        return None
    user_id, previous, outcome = user.get("id"), user.get("previous"), user.get("outcome", "pending")
    if not isinstance(user_id, str) or not isinstance(previous, str) or outcome not in _OUTCOMES:
        return None
    try:
        uuid.UUID(user_id)
    except ValueError:
        return None
    return LedgerEntry(
        user_id,
        str(user.get("upn") or ""),
        previous,
        outcome,
        str(page.get("run") or ""),
        str(page.get("at") or ""),
        str(user.get("detail") or ""),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


async def migrated_count(kv: AsyncKeyValuePort, wave: str) -> int:
    """Users whose latest ledger entry says WaveGuard disabled their per-user MFA (not put back)."""
    return sum(1 for e in (await latest_entries(kv, wave)).values() if e.outcome == "disabled")


async def mark(
    kv: AsyncKeyValuePort, wave: str, entries: Mapping[str, tuple[LedgerEntry, Outcome, str]]
) -> None:
    """Set outcomes across runs: ``entries[user] = (entry, outcome, detail)``."""
    by_run: dict[str, dict[str, tuple[Outcome, str]]] = {}
    for user_id, (entry, outcome, detail) in entries.items():
        by_run.setdefault(entry.run, {})[user_id] = (outcome, detail)
    for run, outcomes in sorted(by_run.items()):
        await record_outcomes(kv, wave, run, outcomes)


async def clear_ledger(kv: AsyncKeyValuePort, wave: str) -> int:
    """Forget a wave's ledger (the demo and tests start clean); returns the pages deleted."""
    pages = await kv.values(ledger_namespace(wave), limit=_MAX_PAGES)
    for page in pages:
        await kv.delete(ledger_namespace(wave), _key(str(page["run"]), int(page["page"])))
    return len(pages)


def _page(wave: str, run: str, at: datetime, index: int, entries: Sequence[LedgerEntry]) -> dict[str, Any]:
    return {
        "wave": wave,
        "run": run,
        "at": at.isoformat(),
        "page": index,
        "users": [e.to_json() for e in entries],
    }
