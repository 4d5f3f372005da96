"""WaveGuard's domain core and its adapters (no Azure Functions types below handlers/).

Submodules are imported explicitly (``from shared.envelope import Envelope``); this package
imports nothing eagerly so HTTP ingress stays fast and never pulls in Microsoft Graph.
"""

from __future__ import annotations
