"""What the onboarding use cases depend on, as one dataclass of ports (fakes in unit tests).

Production builds it once per process from the services (``shared.services.Services.onboarding``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from shared.config import RolloutPlan, Settings
from shared.onboarding.ports import OnboardingGraph
from shared.queues import Sender
from shared.rollout.wave_groups import WaveGroupCache
from shared.state import AsyncStores, AuditEntry, Clock, utc_now

__all__ = ["ACTOR", "Deps"]

# The audit actor of every write onboarding makes.
ACTOR: Final = "waveguard/onboarding"


@dataclass(frozen=True, slots=True)
class Deps:
    """Settings, the plan, Graph, the state stores, the queue sender, the clock, and the wave groups
    resolved so far (one cache per ``Deps``, so per process in production)."""

    settings: Settings
    plan: RolloutPlan
    graph: OnboardingGraph
    state: AsyncStores
    queues: Sender
    clock: Clock = utc_now
    wave_groups: WaveGroupCache = field(default_factory=WaveGroupCache)

    async def audit(
        self, action: str, target: str, reason: str, correlation_id: str, **details: object
    ) -> None:
        """Append an audit entry by the onboarding actor.

        Raises:
            RetryableError: the audit store is unavailable.
        """
        entry = AuditEntry(ACTOR, action, target, reason, correlation_id=correlation_id, details=details)
        await self.state.audit.append(entry)
