"""How far each risk source has been read: a watermark, and the ids already seen in the overlap.

Graph's reports can list a record minutes after its timestamp, so each poll reads from the
watermark minus an overlap and skips the ids it has already handled (kept while they are inside
the overlap). Records live in ``wgstate`` (namespace ``risk-poll``): one per source with the
watermark, and the seen ids as short digests in shards of 1,200 (a table value holds 32K
characters), at most 24,000 ids. They are written after every poll: a poll that dies before writing
reads the same window again, and the alerts it raises again carry the same keys (the router treats
them as the same alert; responses are claimed once per alert). Work that must not happen twice
(adding to counts) rides on the watermark as ``pending``: written with it, applied after it, each
application recorded where it lands, so a poll that dies in between leaves it to the next one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.state import AsyncKeyValuePort, iso, parse_iso

__all__ = ["NAMESPACE", "Watermark", "clear_pending", "read_watermark", "write_watermark"]

NAMESPACE: Final = "risk-poll"
_SHARD: Final = 1200
_MAX_SHARDS: Final = 20


def _digest(item_id: str) -> str:
    return hashlib.sha256(item_id.encode()).hexdigest()[:12]


@dataclass(slots=True)
class Watermark:
    """One source's progress: the newest timestamp handled and the ids seen inside the overlap."""

    source: str
    at: datetime | None = None
    seen: dict[str, int] = field(default_factory=dict)  # id digest -> its timestamp (epoch seconds)
    shards: int = 0
    pending: dict[str, Any] | None = None  # work to apply once, written with the watermark

    def window_start(self, now: datetime, overlap: timedelta, first_look: timedelta) -> datetime:
        """Where the next read starts: the watermark minus the overlap (``first_look`` back at first)."""
        return (self.at - overlap) if self.at is not None else now - first_look

    def is_new(self, item_id: str) -> bool:
        return _digest(item_id) not in self.seen

    def mark(self, item_id: str, stamp: datetime) -> None:
        """Remember ``item_id`` and move the watermark up to its timestamp."""
        self.seen[_digest(item_id)] = int(stamp.timestamp())
        if self.at is None or stamp > self.at:
            self.at = stamp

    def prune(self, overlap: timedelta) -> None:
        """Forget ids older than the overlap behind the watermark (and the oldest beyond the cap)."""
        if self.at is None:
            return
        horizon = int((self.at - overlap).timestamp()) - 1
        kept = {k: v for k, v in self.seen.items() if v >= horizon}
        cap = _SHARD * _MAX_SHARDS
        if len(kept) > cap:
            kept = dict(sorted(kept.items(), key=lambda kv: kv[1])[-cap:])
        self.seen = kept


async def read_watermark(kv: AsyncKeyValuePort, source: str) -> Watermark:
    """The source's progress (an empty one the first time)."""
    stored = await kv.get(NAMESPACE, source)
    value = stored.value if stored is not None and isinstance(stored.value, dict) else {}
    shards = int(value.get("shards") or 0)
    seen: dict[str, int] = {}
    for index in range(min(shards, _MAX_SHARDS)):
        part = await kv.get(NAMESPACE, f"{source}:seen:{index}")
        text = part.value if part is not None and isinstance(part.value, str) else ""
        for entry in filter(None, text.split(",")):
            digest, _, stamp = entry.partition(":")
            if stamp.isdigit():
                seen[digest] = int(stamp)
    pending = value.get("pending")
    return Watermark(
        source, parse_iso(value.get("at")), seen, shards, pending if isinstance(pending, dict) else None
    )


async def write_watermark(kv: AsyncKeyValuePort, mark: Watermark, overlap: timedelta) -> None:
    """Store the progress: the seen-id shards first, then the watermark that points at them."""
    mark.prune(overlap)
    entries = [f"{k}:{v}" for k, v in sorted(mark.seen.items(), key=lambda kv: kv[1])]
    chunks = [",".join(entries[i : i + _SHARD]) for i in range(0, len(entries), _SHARD)]
    for index, chunk in enumerate(chunks):
        await kv.put(NAMESPACE, f"{mark.source}:seen:{index}", chunk)
    for index in range(len(chunks), mark.shards):
        await kv.delete(NAMESPACE, f"{mark.source}:seen:{index}")
    mark.shards = len(chunks)
    await _write_head(kv, mark)


async def clear_pending(kv: AsyncKeyValuePort, mark: Watermark) -> None:
    """The pending work was applied: the watermark without it."""
    if mark.pending is not None:
        mark.pending = None
        await _write_head(kv, mark)


async def _write_head(kv: AsyncKeyValuePort, mark: Watermark) -> None:
    head: dict[str, Any] = {"at": iso(mark.at) if mark.at else None, "shards": mark.shards}
    if mark.pending is not None:
        head["pending"] = mark.pending
    await kv.put(NAMESPACE, mark.source, head)
