"""The services of one process: built once from ``Settings``, handed to every worker and ingress.

``Services`` holds what every function needs — the settings, the rollout plan, the state stores,
the queue sender, the Graph client and the clock — and builds each domain's dependencies from them
once (``onboarding``, ``membership``, ``lifecycle``, the webhook ingresses), so one timer tick or one
queue message never loads the plan or opens the stores twice. Graph is only imported when a
Graph-using dependency is first asked for, so the HTTP ingress (which never asks) stays light.

``ServicesProvider`` is what the composition root (``function_app.py``) creates and gives to each
blueprint: it builds the services on first use, not at import, so a broken setting never stops
the functions from loading; a failed build is not kept, so a fixed setting is picked up. Tests
build their own ``Services`` (in-memory stores, a fake sender) and wrap it in a provider.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.config import RolloutPlan, Settings
from shared.queues import Sender
from shared.state import AsyncStores, Clock, StateStores, utc_now

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.helpdesk.ingress import HelpdeskDeps
    from shared.hr.ingress import IngressDeps
    from shared.onboarding import Deps
    from shared.rollout.lifecycle import LifecycleDeps
    from shared.rollout.membership import SyncDeps

__all__ = ["Services", "ServicesProvider", "Storage", "build_services", "build_storage"]


@dataclass(frozen=True)
class Storage:
    """The part of the services that needs only the storage settings, not the plan: what the poison
    archive and the workers' failure notes use, so they keep working while the plan is broken."""

    stores: StateStores
    queues: Sender
    clock: Clock = utc_now


@dataclass
class Services:
    """Everything a function needs, built once per process (see the module docstring)."""

    settings: Settings
    plan: RolloutPlan
    stores: StateStores
    queues: Sender
    clock: Clock = utc_now
    # The Graph client for the running event loop; by default the process's (``get_graph_client``).
    graph_client: Callable[[], GraphServiceClient] | None = None
    _built: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def state(self) -> AsyncStores:
        """The state stores for code on the event loop (every call offloaded)."""
        return self.stores.aio

    def graph(self) -> GraphServiceClient:
        """The Graph client (imports msgraph on first use)."""
        if self.graph_client is not None:
            return self.graph_client()
        from shared.graph import get_graph_client

        return get_graph_client(self.settings)

    def _once[T](self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            built: T = self._built[name]
            return built

    @property
    def onboarding(self) -> Deps:
        """The ``hr-events`` worker's dependencies."""
        from shared.onboarding import Deps
        from shared.onboarding.ports import GraphOnboarding

        return self._once(
            "onboarding",
            lambda: Deps(
                settings=self.settings,
                plan=self.plan,
                graph=GraphOnboarding(self.graph),
                state=self.state,
                queues=self.queues,
                clock=self.clock,
            ),
        )

    @property
    def hr_ingress(self) -> IngressDeps:
        """The HR webhook ingress's dependencies (no Graph: the ingress never imports it)."""
        from shared.hr.ingress import IngressDeps

        return self._once(
            "hr-ingress",
            lambda: IngressDeps(providers=self.plan.hr_providers, queue=self.queues, clock=self.clock),
        )

    @property
    def helpdesk_ingress(self) -> HelpdeskDeps:
        """The helpdesk webhook ingress's dependencies (no Graph: the ingress never imports it)."""
        from shared.helpdesk.ingress import HelpdeskDeps

        return self._once(
            "helpdesk-ingress",
            lambda: HelpdeskDeps(config=self.plan.helpdesk, kv=self.state.kv, clock=self.clock),
        )

    @property
    def membership(self) -> SyncDeps:
        """The ``wave-work`` worker's dependencies: one pacing writer per process, spanning chunks."""
        from shared.rollout.membership import SyncDeps

        return self._once(
            "membership", lambda: SyncDeps.for_graph(self.plan, self.graph(), self.state, self.queues)
        )

    @property
    def lifecycle(self) -> LifecycleDeps:
        """The rollout timer's dependencies (its membership port enqueues ``wave-work`` chunks)."""
        return self._once("lifecycle", self.lifecycle_for)

    def lifecycle_for(
        self, *, client: GraphServiceClient | None = None, actor: str = "wave-timer"
    ) -> LifecycleDeps:
        """Lifecycle dependencies over ``client`` (a tool running its own event loop needs its own)
        with ``actor`` as the audit actor of policy writes.
        """
        from shared.rollout.lifecycle import LifecycleDeps
        from shared.rollout.lifecycle.announcements import Announcer, GraphAnnouncementMail
        from shared.rollout.lifecycle.graph_evidence import GraphEvidence
        from shared.rollout.lifecycle.nudges import GraphNudgeMail
        from shared.rollout.membership import SyncDeps, start_wave_sync
        from shared.rollout.policies import sync_baseline
        from shared.rollout.wave_groups import ensure_wave_group

        graph = client if client is not None else self.graph()
        membership = (
            self.membership
            if client is None
            else SyncDeps.for_graph(self.plan, graph, self.state, self.queues)
        )
        plan, state = self.plan, self.state

        async def sync_policies(*, reason: str, correlation_id: str) -> object:
            return await sync_baseline(
                graph, plan, state, actor=actor, correlation_id=correlation_id, reason=reason
            )

        async def start_membership(wave: str, *, correlation_id: str) -> object:
            return await start_wave_sync(membership, wave, correlation_id=correlation_id)

        async def ensure_group(wave: str, *, correlation_id: str) -> str:
            return await ensure_wave_group(plan.wave(wave), self.onboarding, correlation_id)

        async def resync_membership(waves: list[str], *, correlation_id: str) -> dict[str, str]:
            from shared.rollout.membership.changed import resync_started_waves

            outcome = await resync_started_waves(
                membership, waves, correlation_id=correlation_id, now=self.clock()
            )
            return outcome.problems

        return LifecycleDeps(
            plan=plan,
            stores=state,
            evidence=GraphEvidence(graph, plan),
            sync_policies=sync_policies,
            start_membership=start_membership,
            clock=self.clock,
            nudge_mail=GraphNudgeMail(graph, plan.new_hires.delivery.sender_mailbox),
            ensure_group=ensure_group,
            resync_membership=resync_membership,
            announcer=Announcer(
                plan,
                state,
                GraphAnnouncementMail(graph, plan, plan.new_hires.delivery.sender_mailbox),
                sender=plan.new_hires.delivery.sender_mailbox,
                clock=self.clock,
            ),
        )


def build_services(settings: Settings) -> Services:
    """The production services for ``settings``: the plan, Azure Tables, Storage queues.

    Raises:
        ConfigError: the plan or the storage configuration is invalid.
    """
    from shared.config import load_plan_for

    storage = build_storage(settings)
    return Services(
        settings=settings, plan=load_plan_for(settings), stores=storage.stores, queues=storage.queues
    )


def build_storage(settings: Settings) -> Storage:
    """The state stores and the queue sender for ``settings`` (the plan is not read).

    Raises:
        ConfigError: the storage configuration is invalid.
    """
    from shared.queues import AsyncQueueSender, QueueSender
    from shared.state import build_state

    return Storage(build_state(settings), AsyncQueueSender(QueueSender.from_settings(settings)))


def _from_environment() -> Services:
    from shared.config import load_settings

    return build_services(load_settings())


def _storage_from_environment() -> Storage:
    from shared.config import load_settings

    return build_storage(load_settings())


class ServicesProvider:
    """Builds the services on first use and keeps them; a failed build is retried next time."""

    def __init__(
        self,
        build: Callable[[], Services] = _from_environment,
        build_storage: Callable[[], Storage] = _storage_from_environment,
    ) -> None:
        self._build = build
        self._build_storage = build_storage
        self._services: Services | None = None
        self._storage: Storage | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, services: Services) -> ServicesProvider:
        """A provider that hands out ``services`` (tests)."""
        provider = cls(lambda: services, lambda: Storage(services.stores, services.queues, services.clock))
        provider._services = services
        return provider

    async def aget_storage(self, *, what: str = "WaveGuard") -> Storage:
        """The stores and the queue sender: those of the services when built, else built from the
        storage settings alone, so a broken plan does not stop poison archiving or failure notes.

        Raises:
            RetryableError: the storage settings are invalid, or storage is unreachable.
        """
        from shared.config.startup import build_or_retry

        services = self._services
        if services is not None:
            return Storage(services.stores, services.queues, services.clock)
        if self._storage is None:
            self._storage = await asyncio.to_thread(build_or_retry, self._build_storage, what=what)
        return self._storage

    def get(self, *, what: str = "WaveGuard") -> Services:
        """The services, built now if need be.

        Raises:
            RetryableError: the settings or plan are invalid (named), or storage is unreachable.
        """
        from shared.config.startup import build_or_retry

        services = self._services
        if services is not None:
            return services
        with self._lock:
            if self._services is None:
                self._services = build_or_retry(self._build, what=what)
            return self._services

    async def aget(self, *, what: str = "WaveGuard") -> Services:
        """``get`` for async functions: the first build (plan, clients) runs off the event loop."""
        if self._services is not None:
            return self._services
        return await asyncio.to_thread(self.get, what=what)
