"""Microsoft Graph: the one place that builds the client, plus error mapping.

Importing this package does not import msgraph (its models take about a second to load):
``build_graph_client`` / ``get_graph_client`` / ``graph_health`` import it when called.
"""

from __future__ import annotations

from shared.graph.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT_SECONDS,
    GRAPH_SCOPE,
    build_graph_client,
    get_graph_client,
    graph_health,
    guard_of,
    reset_graph_clients,
)
from shared.graph.errors import GraphErrorInfo, graph_error_info, parse_retry_after, to_waveguard_error

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_WAIT_SECONDS",
    "GRAPH_SCOPE",
    "GraphErrorInfo",
    "build_graph_client",
    "get_graph_client",
    "graph_error_info",
    "graph_health",
    "guard_of",
    "parse_retry_after",
    "reset_graph_clients",
    "to_waveguard_error",
]
