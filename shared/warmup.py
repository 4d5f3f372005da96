"""Warm start: what the first invocations would otherwise pay, done on a background thread at start.

``function_app`` starts it after indexing (``WAVEGUARD_WARM_START``, on unless ``false``):

1. the services are built (settings, plan, stores, queue client) and the HR ingress's dependencies
   with them, so the first webhook does not build them; the state tables are read once (which
   creates them if need be and opens the storage connection);
2. a Graph client is built once (loading azure-identity, Kiota and httpx) and the request path a
   hire uses is imported (``shared.graph.warmup``), so the first worker invocation that calls
   Graph costs about what later ones do. No msgraph model is parsed: onboarding parses none, and
   loading them (1.5 s of the interpreter on 2 cores) beside the first invocations slowed them.

It runs beside the host, never in the way: importing ``function_app`` stays free of msgraph (the
thread imports it), a build that fails is left for the first invocation to retry and report (as
without the warm start), and no state is written (reading the tables creates them if they do not
exist yet, as any first use would).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from shared.services import ServicesProvider

__all__ = ["APP_MODULES", "THREAD_NAME", "WARM_SETTING", "start_warmup", "warm"]

log = logging.getLogger(__name__)

WARM_SETTING: Final = "WAVEGUARD_WARM_START"
THREAD_NAME: Final = "waveguard-warm-start"
WARM_NAMESPACE: Final = "warm-start"  # read, never written
# What the first hire imports of WaveGuard's own (the worker and the Graph calls it makes).
APP_MODULES: Final = (
    "shared.onboarding.worker",
    "shared.graph.account",
    "shared.graph.directory",
    "shared.graph.groups",
    "shared.graph.hire_reads",
    "shared.graph.hire_writes",
    "shared.graph.mail",
    "shared.graph.tap",
    "shared.graph.users_json",
)


def start_warmup(services: ServicesProvider, environ: Mapping[str, str]) -> threading.Thread | None:
    """Start the warm-up thread (None when ``WAVEGUARD_WARM_START`` is ``false``)."""
    if environ.get(WARM_SETTING, "true").strip().lower() in ("false", "0", "off", "no"):
        return None
    thread = threading.Thread(target=warm, args=(services,), name=THREAD_NAME, daemon=True)
    thread.start()
    return thread


def warm(services: ServicesProvider) -> dict[str, float]:
    """Build the services and load Graph's request path; seconds each took (failures logged, not
    raised)."""
    from shared.errors import WaveGuardError

    took: dict[str, float] = {}
    started = time.perf_counter()
    ready = None
    try:
        ready = services.get(what="warm start")
        ready.hr_ingress  # noqa: B018 - built now, kept for the first webhook
        ready.stores.kv.get(WARM_NAMESPACE, "probe")
        ready.stores.audit.list(limit=1)
        took["services"] = time.perf_counter() - started
    except WaveGuardError as exc:  # the first invocation retries the build and reports it
        log.info("warm start: services not built yet (%s)", exc.message)
    except Exception as exc:  # a warm-up is an optimisation: never fatal, and Graph is still warmed
        log.warning("warm start: services not built (%s)", type(exc).__name__)
    started = time.perf_counter()
    try:
        from shared.graph.warmup import warm_graph

        if ready is not None:
            from shared.graph import build_graph_client

            build_graph_client(ready.settings)  # (each event loop builds its own; this loads the code)
        warm_graph()
        for name in APP_MODULES:
            importlib.import_module(name)
        took["graph"] = time.perf_counter() - started
    except Exception as exc:  # a warm-up is an optimisation: never fatal
        log.warning("warm start: Graph code not loaded (%s)", type(exc).__name__)
    log.info("warm start done", extra={f"warm_{k}_s": round(v, 3) for k, v in took.items()})
    return took
