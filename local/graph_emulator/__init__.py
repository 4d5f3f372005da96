"""An in-memory Microsoft Graph for the local stack and the tests (never deployed).

Run it with ``python -m local.graph_emulator --port 7072`` or start it in-process::

    handle = start_emulator(port=0, seed="demo")
    handle.base_url   # http://127.0.0.1:<port>/v1.0, for msgraph-sdk's request adapter
    handle.admin_url  # http://127.0.0.1:<port>/_emulator
    handle.stop()
"""

from __future__ import annotations

from local.graph_emulator.app import Emulator, EmulatorConfig
from local.graph_emulator.errors import GraphError
from local.graph_emulator.resources.identity_protection import IdentityProtectionBudget
from local.graph_emulator.seed import (
    BREAK_GLASS_GROUP,
    BREAK_GLASS_UPNS,
    DEMO_USER_COUNT,
    DEPARTMENTS,
    IT_PILOT_GROUP,
    SERVICE_MAILBOX_UPN,
    DemoTenant,
    stable_id,
)
from local.graph_emulator.server import EmulatorHandle, start_emulator
from local.graph_emulator.store import TenantStore, register_extension
from local.graph_emulator.throttle import WriteBudget

__all__ = [
    "BREAK_GLASS_GROUP",
    "BREAK_GLASS_UPNS",
    "DEMO_USER_COUNT",
    "DEPARTMENTS",
    "IT_PILOT_GROUP",
    "SERVICE_MAILBOX_UPN",
    "DemoTenant",
    "Emulator",
    "EmulatorConfig",
    "EmulatorHandle",
    "GraphError",
    "IdentityProtectionBudget",
    "TenantStore",
    "WriteBudget",
    "register_extension",
    "stable_id",
    "start_emulator",
]
