"""The ``wave-work`` queue worker: its one route and how its permanent failures are recorded."""

from __future__ import annotations

from shared.envelope import Envelope
from shared.errors import PermanentError
from shared.names import WAVE_WORK
from shared.pipeline import PipelineDeps, Routes, Settlement, handle_envelope
from shared.rollout.membership.work import ACTOR, SYNC_CHUNK, SyncDeps, process_chunk

__all__ = ["ACTOR", "pipeline_deps", "process_wave_work", "settle", "wave_work_routes"]


def wave_work_routes(deps: SyncDeps) -> Routes:
    """``wave.sync.chunk`` → ``process_chunk``."""

    async def chunk(envelope: Envelope) -> object:
        return await process_chunk(deps, envelope)

    return {SYNC_CHUNK: chunk}


def pipeline_deps(deps: SyncDeps) -> PipelineDeps:
    """What the pipeline writes to for ``wave-work``."""
    return PipelineDeps(queue=WAVE_WORK, actor=ACTOR, state=deps.state, queues=deps.queues)


def settle(error: PermanentError, envelope: Envelope | None) -> Settlement:
    """Every permanent ``wave-work`` failure (unknown type, bad payload, missing run): one high alert."""
    envelope_id = envelope.id if envelope is not None else "unparseable"
    return Settlement(
        action="wave.sync.rejected",
        target=envelope_id,
        alertname="WaveWorkRejected",
        severity="high",
        alert_key=f"wave-work:{envelope_id}",
    )


async def process_wave_work(body: str | bytes, deps: SyncDeps) -> object:
    """Handle one ``wave-work`` message body through the pipeline; returns the outcome or the settled error.

    Raises:
        RetryableError: a transient failure; the message must be retried.
    """
    return await handle_envelope(body, wave_work_routes(deps), pipeline_deps(deps), on_permanent=settle)
