"""The alerts the router has taken in, as tests running the real app see them.

With the app running, the ``alerts`` queue has a consumer (the router), so a test cannot peek the
queue for what was raised; the router records every alert it routes in ``wgstate`` (namespace
``alerts-active``) at once, before any group wait. Each record comes back as an ``alert`` envelope
whose payload has the alert's ``key``, ``severity``, ``summary``, ``labels`` (with ``alertname``),
``details`` and ``status``.
"""

from __future__ import annotations

import asyncio

from shared.alerting.router import ACTIVE_NAMESPACE
from shared.config import Settings, StorageSettings
from shared.envelope import Envelope
from shared.state import build_state


def routed_alerts(connection_string: str) -> list[Envelope]:
    """Every alert the router has recorded (firing or resolved, not yet forgotten)."""
    stores = build_state(Settings(storage=StorageSettings(connection_string=connection_string)))
    records = asyncio.run(stores.aio.kv.values(ACTIVE_NAMESPACE))
    return [Envelope(type="alert", payload=r) for r in records if isinstance(r, dict)]


def alert_names(connection_string: str) -> list[str]:
    return sorted(str(a.payload["labels"].get("alertname")) for a in routed_alerts(connection_string))
