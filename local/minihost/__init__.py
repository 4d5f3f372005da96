"""A small Azure Functions host for one machine: runs a v2 Python app's HTTP, queue and timer triggers.

    host = create_host("function_app:app", app_dir=".", http_port=0).start()
    ...  # host.base_url + "/api/health"
    host.stop()

Flow: settings.py (host.json, local.settings.json) -> loader.py (import, get_functions() once,
FunctionSpec) -> http_server.py / queue_poller.py / timers.py (trigger adapters) -> host.py (lifecycle).
host.json `functionTimeout` is enforced by invoker.py: an overrun fails the invocation (async functions are
cancelled; sync ones are left running on their thread, which Python cannot stop).
"""

from __future__ import annotations

from local.minihost.errors import AppLoadError, BindingError, ConfigError, MiniHostError
from local.minihost.host import MiniHost, create_host, run_until_signalled
from local.minihost.loader import FunctionSpec

__all__ = [
    "AppLoadError",
    "BindingError",
    "ConfigError",
    "FunctionSpec",
    "MiniHost",
    "MiniHostError",
    "create_host",
    "run_until_signalled",
]
