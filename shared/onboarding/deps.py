"""What the onboarding use cases depend on, as one dataclass of ports (fakes in unit tests)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol

from shared.config import RolloutPlan, Settings
from shared.envelope import Envelope
from shared.onboarding.ports import OnboardingGraph
from shared.state import AuditEntry, Clock, StateStores, utc_now

__all__ = ["ACTOR", "Deps", "QueueSenderPort", "build_deps", "run_sync"]

# The audit actor of every write onboarding makes.
ACTOR: Final = "waveguard/onboarding"


class QueueSenderPort(Protocol):
    """What onboarding needs from ``shared.queues.QueueSender``."""

    def send(self, queue_name: str, envelope: Envelope, *, delay: timedelta | float | None = None) -> str:
        """Enqueue ``envelope`` (invisible for ``delay``)."""
        ...


@dataclass(frozen=True, slots=True)
class Deps:
    """Settings, the plan, Graph, the state stores, the queue sender and the clock."""

    settings: Settings
    plan: RolloutPlan
    graph: OnboardingGraph
    state: StateStores
    queues: QueueSenderPort
    clock: Clock = utc_now

    async def audit(
        self, action: str, target: str, reason: str, correlation_id: str, **details: object
    ) -> None:
        """Append an audit entry by the onboarding actor (off the event loop).

        Raises:
            RetryableError: the audit store is unavailable.
        """
        entry = AuditEntry(ACTOR, action, target, reason, correlation_id=correlation_id, details=details)
        await run_sync(self.state.audit.append, entry)


async def run_sync[T](fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """Run a blocking storage call on a worker thread (the storage SDKs are synchronous)."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def build_deps(settings: Settings) -> Deps:
    """The production dependencies for ``settings``: Azure Tables, Storage queues and Graph.

    Raises:
        ConfigError: the plan or storage configuration is invalid.
    """
    from shared.config import load_plan_for
    from shared.onboarding.ports import GraphOnboarding
    from shared.queues import get_queue_sender
    from shared.state import build_state

    return Deps(
        settings=settings,
        plan=load_plan_for(settings),
        graph=GraphOnboarding(settings),
        state=build_state(settings),
        queues=get_queue_sender(settings),
    )
