"""Operator approvals of a wave's promotion (``promotion: approval``), kept until it is promoted."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from shared.state import AsyncKeyValuePort

__all__ = ["APPROVALS_NAMESPACE", "approval_of", "clear_approval", "record_approval"]

# KV namespace; key = wave name; value {"approvedBy": str, "at": ISO-8601, "reason": str}.
APPROVALS_NAMESPACE: Final = "wave-approvals"


async def record_approval(
    kv: AsyncKeyValuePort, wave: str, *, actor: str, at: datetime, reason: str = ""
) -> None:
    """Record that ``actor`` approved promoting ``wave`` (repeating it just refreshes the record).

    Raises:
        RetryableError: the store is unavailable.
    """
    await kv.put(APPROVALS_NAMESPACE, wave, {"approvedBy": actor, "at": at.isoformat(), "reason": reason})


async def approval_of(kv: AsyncKeyValuePort, wave: str) -> dict[str, Any] | None:
    """The recorded approval of ``wave``, or None.

    Raises:
        RetryableError: the store is unavailable.
    """
    stored = await kv.get(APPROVALS_NAMESPACE, wave)
    return stored.value if stored is not None and isinstance(stored.value, dict) else None


async def clear_approval(kv: AsyncKeyValuePort, wave: str) -> None:
    """Forget the approval once used (a rolled-back wave needs a new one).

    Raises:
        RetryableError: the store is unavailable.
    """
    await kv.delete(APPROVALS_NAMESPACE, wave)
