"""The ``wave-work`` queue worker: its one route and how its permanent failures are recorded."""

from __future__ import annotations

from typing import Final

from shared.envelope import Envelope
from shared.errors import PermanentError
from shared.names import WAVE_WORK
from shared.pipeline import PipelineDeps, QueueWorker, Routes, Settlement, handle_envelope
from shared.rollout.membership.work import ACTOR, SYNC_CHUNK, SyncDeps, process_chunk

__all__ = ["ACTOR", "WAVE_WORK_WORKER", "process_wave_work", "settle", "wave_work_routes"]


def wave_work_routes(deps: SyncDeps) -> Routes:
    """``wave.sync.chunk`` → ``process_chunk``."""

    async def chunk(envelope: Envelope) -> object:
        return await process_chunk(deps, envelope)

    return {SYNC_CHUNK: chunk}


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
    """One ``wave-work`` body through the pipeline, as the trigger runs it, over ``deps``."""
    return await handle_envelope(
        body,
        wave_work_routes(deps),
        PipelineDeps(WAVE_WORK, ACTOR, deps.state, deps.queues),
        on_permanent=settle,
    )


# The ``wave-work`` worker as the trigger runs it.
WAVE_WORK_WORKER: Final = QueueWorker(
    actor=ACTOR, routes=lambda services: wave_work_routes(services.membership), settle=settle
)
