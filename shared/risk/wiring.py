"""The risk poller over the services (one paced Graph port per process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.risk.graph_port import IdentityProtectionPacer, client_port
from shared.risk.poll import RiskDeps

if TYPE_CHECKING:
    from shared.services import Services

__all__ = ["risk_deps"]

# The pacing must be shared by every poll of the process, so the port is kept per Graph client.
_ports: dict[int, tuple[Any, IdentityProtectionPacer]] = {}


def risk_deps(services: Services) -> RiskDeps:
    """The poller's dependencies: the plan, the paced Graph port, the stores, the queues, the clock."""
    graph = services.graph()
    kept = _ports.get(id(graph))
    if kept is None or kept[0] is not graph:
        kept = (graph, client_port(graph))
        _ports[id(graph)] = kept
    return RiskDeps(services.plan, kept[1], services.state, services.queues, services.clock)
