"""One ``wave-work`` message: parse, route by envelope type, apply the error policy.

RetryableError (and anything unknown) propagates so the host retries and finally poisons the
message. A PermanentError (unknown type, bad payload, missing run) is audited, alerted on and
settled.
"""

from __future__ import annotations

import logging

from shared.alerting import Alert, raise_alert
from shared.envelope import Envelope
from shared.errors import BusyError, InvalidPayloadError, PermanentError, classify
from shared.names import WAVE_WORK
from shared.onboarding.deps import run_sync
from shared.queues import defer
from shared.rollout.membership.work import ACTOR, SYNC_CHUNK, ChunkOutcome, SyncDeps, process_chunk
from shared.state import AuditEntry
from shared.telemetry import log_context, start_span_from_traceparent

__all__ = ["process_wave_work"]

log = logging.getLogger(__name__)


async def process_wave_work(body: str | bytes, deps: SyncDeps) -> ChunkOutcome | PermanentError | BusyError:
    """Handle one message body; returns the chunk outcome, or the PermanentError it settled.

    Raises:
        RetryableError: a transient failure; the message must be retried.
    """
    try:
        envelope = Envelope.from_json(body)
    except InvalidPayloadError as exc:
        await _settle(exc, None, deps)
        return exc
    attributes = {"messaging.message.id": envelope.id, "waveguard.event_type": envelope.type}
    with (
        log_context(envelope_id=envelope.id, event_type=envelope.type),
        start_span_from_traceparent(f"process {envelope.type}", envelope.traceparent, attributes),
    ):
        try:
            if envelope.type != SYNC_CHUNK:
                raise InvalidPayloadError.for_field("type", f"unknown wave-work type {envelope.type!r}")
            return await process_chunk(deps, envelope)
        except BusyError as exc:
            delay = await run_sync(defer, deps.queues, WAVE_WORK, envelope, exc)
            log.info("wave-work deferred: another worker holds the chunk", extra={"delay_seconds": delay})
            return exc
        except Exception as exc:
            if classify(exc) != "permanent":
                raise
            error = exc if isinstance(exc, PermanentError) else PermanentError(type(exc).__name__)
            await _settle(error, envelope, deps)
            return error


async def _settle(error: PermanentError, envelope: Envelope | None, deps: SyncDeps) -> None:
    envelope_id = envelope.id if envelope is not None else "unparseable"
    log.warning("wave-work message failed permanently: %s", error, extra={"alertname": "WaveWorkRejected"})
    details = {"envelopeId": envelope_id, "eventType": envelope.type if envelope else None, **error.to_dict()}
    details.pop("correlationId", None)
    entry = AuditEntry(ACTOR, "wave.sync.rejected", envelope_id, str(error), correlation_id=envelope_id,
                       details=details)  # fmt: skip
    await run_sync(deps.state.audit.append, entry)
    alert = Alert(key=f"wave-work:{envelope_id}", severity="high", summary=f"WaveWorkRejected: {error}",
                  source=ACTOR, labels={"alertname": "WaveWorkRejected", "severity": "high"},
                  details=details)  # fmt: skip
    await run_sync(raise_alert, deps.queues, alert)
