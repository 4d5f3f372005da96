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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from shared.state import AsyncKeyValuePort

__all__ = [
    "LedgerEntry",
    "Outcome",
    "clear_ledger",
    "latest_entries",
    "ledger_namespace",
    "mark",
    "record_outcomes",
    "settle_pages",
    "write_ahead",
]

Outcome = Literal["pending", "disabled", "failed", "restored"]
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
        user["detail"] = detail
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
    change WaveGuard made, or meant to make)."""
    pages = await kv.values(ledger_namespace(wave), limit=_MAX_PAGES)
    pages.sort(key=lambda p: (str(p.get("at") or ""), str(p.get("run") or ""), int(p.get("page") or 0)))
    latest: dict[str, LedgerEntry] = {}
    for page in pages:
        for user in page.get("users") or []:
            latest[str(user["id"])] = LedgerEntry(
                str(user["id"]),
                str(user.get("upn") or ""),
                str(user["previous"]),
                user.get("outcome", "pending"),
                str(page.get("run") or ""),
                str(page.get("at") or ""),
                str(user.get("detail") or ""),
            )
    return latest


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
