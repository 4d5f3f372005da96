"""The fault campaign's end state (read from the emulator's admin API and the queues) and its comparison.

Per hire: TAPs issued, the live one, and the TAPs the e-mails carried (by sha256: the emulator keeps
only hashes). Per WaveGuard group: its members. Per queue: what sits in its poison queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from bench.fault_events import Workload
from local.graph_emulator import EmulatorHandle
from shared.config import Settings, StorageSettings
from shared.names import ALL_QUEUES, poison
from shared.poison import list_poison
from shared.state import build_state

__all__ = ["EndState", "HireState", "capture_end_state", "compare", "queue_depth"]

_TAP_LINE: Final = re.compile(r"Temporary Access Pass:\s+(\S+)")
_GROUP_PREFIX: Final = "WaveGuard - "


@dataclass(frozen=True, slots=True)
class HireState:
    """What one hire ended with."""

    taps_issued: int
    live_tap: str | None
    mailed_taps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndState:
    """Everything the comparison looks at."""

    hires: dict[str, HireState]
    groups: dict[str, frozenset[str]]  # displayName -> member UPNs (ids differ between runs)
    poison: dict[str, int]


def queue_depth(connection_string: str, name: str) -> int:
    """Messages in the queue, visible or not (0 when it does not exist)."""
    client = QueueClient.from_connection_string(connection_string, name)
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0


def _pages(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = http.get(next_url).raise_for_status().json()
        items.extend(page["value"])
        next_url = page.get("@odata.nextLink")
    return items


def capture_end_state(emulator: EmulatorHandle, connection_string: str, workload: Workload) -> EndState:
    """Read the tenant and the poison queues once the run has settled."""
    with httpx.Client(timeout=60) as http:
        people = _pages(http, f"{emulator.base_url}/users?$top=999")
        users = {u["userPrincipalName"].lower(): u["id"] for u in people}
        upn_of = {u["id"]: u["userPrincipalName"].lower() for u in people}
        taps = {
            e["userId"]: e for e in http.get(f"{emulator.admin_url}/taps").raise_for_status().json()["value"]
        }
        outbox = http.get(f"{emulator.admin_url}/outbox").raise_for_status().json()["value"]
        hires: dict[str, HireState] = {}
        for hire in workload.hires:
            user_id = users.get(hire.upn.lower())
            entry = taps.get(user_id or "", {"taps": [], "activeId": None})
            live = next((t["secretSha256"] for t in entry["taps"] if t["id"] == entry["activeId"]), None)
            mailed = tuple(
                hashlib.sha256(match.group(1).encode()).hexdigest()
                for mail in outbox
                if hire.upn in mail.get("body", "") and (match := _TAP_LINE.search(mail["body"]))
            )
            hires[hire.upn] = HireState(len(entry["taps"]), live, mailed)
        groups = {
            g["displayName"]: frozenset(
                upn_of.get(m["id"], m["id"])
                for m in _pages(http, f"{emulator.base_url}/groups/{g['id']}/members?$top=999")
            )
            for g in _pages(http, f"{emulator.base_url}/groups?$top=999")
            if str(g.get("displayName", "")).startswith(_GROUP_PREFIX)
        }
    # Poison triggers drain each -poison queue into the archive: count both.
    poisoned = {name: queue_depth(connection_string, poison(name)) for name in ALL_QUEUES}
    settings = Settings(storage=StorageSettings(connection_string=connection_string))
    for record in asyncio.run(list_poison(build_state(settings).aio.kv)):
        poisoned[record.source_queue] = poisoned.get(record.source_queue, 0) + 1
    return EndState(hires, groups, poisoned)


def compare(clean: EndState, faulty: EndState) -> dict[str, Any]:
    """Effects the faulty run lost or duplicated against the clean run, and what it poisoned."""
    lost: dict[str, int] = {"mails": 0, "working_taps": 0, "memberships": 0, "groups": 0}
    dup: dict[str, int] = {"mails": 0, "taps_delivered": 0, "memberships": 0, "groups": 0}
    replaced = 0
    for upn, want in clean.hires.items():
        got = faulty.hires.get(upn, HireState(0, None, ()))
        if want.mailed_taps and not got.mailed_taps:
            lost["mails"] += 1
        elif got.mailed_taps and got.live_tap not in got.mailed_taps and want.live_tap in want.mailed_taps:
            lost["working_taps"] += 1  # mailed, but the pass in the mail no longer works
        dup["mails"] += max(0, len(got.mailed_taps) - max(1, len(want.mailed_taps)))
        dup["taps_delivered"] += max(0, len(set(got.mailed_taps)) - 1)
        replaced += max(0, got.taps_issued - max(1, want.taps_issued))
    by_group: dict[str, dict[str, int]] = {}
    for name, members in clean.groups.items():
        if name not in faulty.groups:
            lost["groups"] += 1
            continue
        missing, extra = len(members - faulty.groups[name]), len(faulty.groups[name] - members)
        lost["memberships"] += missing
        dup["memberships"] += extra
        if missing or extra:
            by_group[name] = {"missing": missing, "extra": extra}
    dup["groups"] = len(set(faulty.groups) - set(clean.groups))
    return {
        "lost": sum(lost.values()),
        "duplicated": sum(dup.values()),
        "poisoned": sum(faulty.poison.values()),
        "lost_detail": lost,
        "duplicated_detail": dup,
        "poison_detail": {k: v for k, v in faulty.poison.items() if v},
        "poisoned_clean_run": sum(clean.poison.values()),
        "taps_replaced_unsent": replaced,
        "hires_mailed_clean": sum(1 for h in clean.hires.values() if h.mailed_taps),
        "hires_mailed_faulty": sum(1 for h in faulty.hires.values() if h.mailed_taps),
        "membership_differences": by_group,
        "wave_groups": {name: len(members) for name, members in sorted(faulty.groups.items())},
    }
