"""One tick of the rollout timer: evaluate the waves; page when a tick cannot succeed by retrying."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from shared.alerting import Alert, raise_alert
from shared.errors import PermanentError, RetryableError
from shared.rollout.lifecycle.evaluate import EvaluationResult, LifecycleDeps, evaluate_waves

if TYPE_CHECKING:
    from shared.queues import Sender

__all__ = ["TIMER_ALERT_SOURCE", "run_timer_tick"]

log = logging.getLogger(__name__)

TIMER_ALERT_SOURCE: Final = "wave-timer"


async def run_timer_tick(
    deps: LifecycleDeps, alerts: Sender, *, correlation_id: str
) -> EvaluationResult | None:
    """Evaluate every wave; None when the tick failed (retryable: logged; permanent: alerted).

    A permanent failure (the CA lint blocking a promotion, Graph refusing a read) repeats every
    tick until a person acts, so it raises a critical alert (deduplicated per error type and hour).

    Raises:
        RetryableError: the alert itself could not be enqueued.
    """
    try:
        return await evaluate_waves(deps, correlation_id=correlation_id)
    except RetryableError as exc:
        log.warning(
            "wave timer tick failed; the next tick retries",
            extra={"correlation_id": correlation_id, "error": type(exc).__name__},
        )
        return None
    except PermanentError as exc:
        log.error(
            "wave timer tick failed", extra={"correlation_id": correlation_id, "error": type(exc).__name__}
        )
        alert = Alert(
            key=f"wave-timer:{type(exc).__name__}",
            severity="critical",
            source=TIMER_ALERT_SOURCE,
            summary=f"The rollout timer cannot progress the waves: {exc}"[:500],
            labels={"correlation_id": correlation_id},
            details={"error": type(exc).__name__},
        )
        await raise_alert(alerts, alert)
        return None
