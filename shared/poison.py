"""Poison made loud and recoverable.

When a worker invocation fails, ``record_failure`` notes the error under the message body's hash
(the host moves the body to ``<queue>-poison`` as a new message with a new id, so the body is what
links the two). A queue trigger on every poison queue hands each message to ``archive_poison``: it
keeps the original body in state (namespace ``poison``), raises a ``PoisonMessage`` alert on the
``alerts`` queue and lets the poison message go. ``waveguard poison list|show|replay|drop`` reads
that archive; replay puts the original body back on its source queue, unchanged (same envelope id,
so the idempotency of its effects still holds). Every step is idempotent per poison message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from shared.alerting import Alert, raise_alert
from shared.errors import InvalidPayloadError, NotFoundError, WaveGuardError
from shared.names import is_poison, source_of_poison
from shared.queues import Sender
from shared.state import AsyncKeyValuePort, AsyncStores, AuditEntry

__all__ = [
    "FAILURES_NAMESPACE",
    "POISON_NAMESPACE",
    "PoisonRecord",
    "archive_poison",
    "body_key",
    "drop_poison",
    "list_poison",
    "record_failure",
    "replay_poison",
]

POISON_NAMESPACE: Final = "poison"
FAILURES_NAMESPACE: Final = "failures"
ACTOR: Final = "waveguard/poison"
_MAX_ERROR: Final = 500
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoisonRecord:
    """One archived poison message."""

    id: str
    queue: str
    source_queue: str
    message_id: str
    body: str
    dequeue_count: int
    archived_at: str
    last_error: str | None
    envelope_id: str | None
    envelope_type: str | None
    status: str = "open"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "sourceQueue": self.source_queue,
            "messageId": self.message_id,
            "body": self.body,
            "dequeueCount": self.dequeue_count,
            "archivedAt": self.archived_at,
            "lastError": self.last_error,
            "envelopeId": self.envelope_id,
            "envelopeType": self.envelope_type,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PoisonRecord:
        return cls(
            id=str(raw["id"]),
            queue=str(raw["queue"]),
            source_queue=str(raw["sourceQueue"]),
            message_id=str(raw["messageId"]),
            body=str(raw["body"]),
            dequeue_count=int(raw.get("dequeueCount", 0)),
            archived_at=str(raw["archivedAt"]),
            last_error=raw.get("lastError"),
            envelope_id=raw.get("envelopeId"),
            envelope_type=raw.get("envelopeType"),
            status=str(raw.get("status", "open")),
        )


def body_key(queue: str, body: str) -> str:
    """The key linking a failed delivery to its poison copy: the source queue and the body's hash."""
    return f"{queue}:{hashlib.sha256(body.encode()).hexdigest()[:40]}"


async def record_failure(
    kv: AsyncKeyValuePort, queue: str, body: str, error: BaseException, *, dequeue_count: int
) -> None:
    """Note why a delivery of ``body`` on ``queue`` failed (its kind and message, never secrets).

    Raises:
        RetryableError: the store is unavailable (callers suppress it: the failure is what matters).
    """
    kind = error.kind if isinstance(error, WaveGuardError) else type(error).__name__
    text = f"{type(error).__name__} ({kind}): {error}"[:_MAX_ERROR]
    await kv.put(FAILURES_NAMESPACE, body_key(queue, body), {"error": text, "dequeueCount": dequeue_count})


def _envelope_fields(body: str) -> tuple[str | None, str | None]:
    try:
        raw = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(raw, dict):
        return None, None
    ident, kind = raw.get("id"), raw.get("type")
    return (ident if isinstance(ident, str) else None), (kind if isinstance(kind, str) else None)


async def archive_poison(
    stores: AsyncStores,
    sender: Sender,
    *,
    queue: str,
    message_id: str,
    body: str,
    dequeue_count: int,
    now: Callable[[], datetime],
) -> PoisonRecord:
    """Archive one poison message and raise ``PoisonMessage`` (both once per message).

    Raises:
        InvalidPayloadError: ``queue`` is not a poison queue.
        RetryableError: storage failed; the poison message stays and is delivered again.
    """
    if not is_poison(queue):
        raise InvalidPayloadError.for_field("queue", f"{queue!r} is not a poison queue")
    source = source_of_poison(queue)
    record_id = f"{queue}:{message_id}"
    existing = await stores.kv.get(POISON_NAMESPACE, record_id)
    if existing is not None:
        record = PoisonRecord.from_dict(existing.value)
    else:
        failure = await stores.kv.get(FAILURES_NAMESPACE, body_key(source, body))
        envelope_id, envelope_type = _envelope_fields(body)
        record = PoisonRecord(
            id=record_id,
            queue=queue,
            source_queue=source,
            message_id=message_id,
            body=body,
            dequeue_count=dequeue_count,
            archived_at=now().isoformat(),
            last_error=failure.value.get("error") if failure is not None else None,
            envelope_id=envelope_id,
            envelope_type=envelope_type,
        )
        await stores.kv.put(POISON_NAMESPACE, record_id, record.to_dict())
    alert = Alert(
        key=f"poison:{record_id}",
        severity="high",
        summary=f"PoisonMessage: a message on {source} failed {max(dequeue_count, 1)} times and was set "
        f"aside ({record.last_error or 'no error recorded'}); see `waveguard poison show {record_id}`",
        source=ACTOR,
        labels={"alertname": "PoisonMessage", "severity": "high", "queue": queue},
        details={
            "queue": queue,
            "sourceQueue": source,
            "messageId": message_id,
            "recordId": record_id,
            "envelopeId": record.envelope_id,
            "envelopeType": record.envelope_type,
            "dequeueCount": dequeue_count,
            "lastError": record.last_error,
        },
        occurred_at=now(),
    )
    await raise_alert(sender, alert)  # the same alert id within the dedupe period: sent twice, delivered once
    log.warning("poison message archived", extra={"queue": queue, "record_id": record_id})
    return record


async def list_poison(kv: AsyncKeyValuePort, *, queue: str | None = None) -> list[PoisonRecord]:
    """Archived poison messages, oldest first (optionally of one poison or source queue)."""
    records = [PoisonRecord.from_dict(v) for v in await kv.values(POISON_NAMESPACE) if isinstance(v, dict)]
    if queue:
        records = [r for r in records if queue in (r.queue, r.source_queue)]
    return sorted(records, key=lambda r: (r.archived_at, r.id))


async def _get(kv: AsyncKeyValuePort, record_id: str) -> tuple[PoisonRecord, str]:
    stored = await kv.get(POISON_NAMESPACE, record_id)
    if stored is None:
        raise NotFoundError(
            f"no archived poison message {record_id!r} (see `waveguard poison list`)", field="id"
        )
    return PoisonRecord.from_dict(stored.value), stored.etag


async def replay_poison(
    stores: AsyncStores, sender: Sender, record_id: str, *, actor: str, reason: str
) -> PoisonRecord:
    """Put the original body back on its source queue and mark the record replayed (audited).

    Replaying twice sends twice: the envelope id is unchanged, so its effects still happen once.

    Raises:
        NotFoundError: no such record.
        RetryableError: storage failed (nothing was marked; replay again).
    """
    record, _ = await _get(stores.kv, record_id)
    message_id = await sender.send_raw(record.source_queue, record.body)
    replayed = replace(record, status="replayed")
    await stores.kv.put(POISON_NAMESPACE, record_id, replayed.to_dict())
    await stores.audit.append(
        AuditEntry(
            actor,
            "poison.replay",
            record_id,
            reason,
            correlation_id=record.envelope_id,
            details={"queue": record.source_queue, "newMessageId": message_id},
        )
    )
    return replayed


async def drop_poison(stores: AsyncStores, record_id: str, *, actor: str, reason: str) -> PoisonRecord:
    """Delete an archived poison message for good (audited).

    Raises:
        NotFoundError: no such record.
    """
    record, etag = await _get(stores.kv, record_id)
    await stores.kv.delete(POISON_NAMESPACE, record_id, if_match=etag)
    await stores.audit.append(
        AuditEntry(
            actor,
            "poison.drop",
            record_id,
            reason,
            correlation_id=record.envelope_id,
            details={"queue": record.source_queue, "envelopeType": record.envelope_type},
        )
    )
    return record
