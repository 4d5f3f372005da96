"""The emulator core: tenant state, write budget, faults and request log behind one ``handle`` call.

The HTTP server only turns bytes into a ``Request`` and a ``Response`` back into bytes; everything
Graph-like happens here, so ``$batch`` items take exactly the same path as top-level requests.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local.graph_emulator import admin, batch, permissions
from local.graph_emulator.clock import EmulatorClock
from local.graph_emulator.errors import GraphError, error_body
from local.graph_emulator.faults import FaultInjector
from local.graph_emulator.limits import RateLimitConfig, RateLimiters
from local.graph_emulator.outbound import Outbound
from local.graph_emulator.requestlog import RequestLog
from local.graph_emulator.resources import (
    auth_methods,
    conditional_access,
    delta,
    drafts,
    groups,
    identity_protection,
    mail,
    members,
    named_locations,
    per_user_mfa,
    provisioning,
    registration,
    signins,
    subscriptions,
    tap,
    tenant_settings,
    users,
)
from local.graph_emulator.resources.identity_protection import (
    IdentityProtectionBucket,
    IdentityProtectionBudget,
)
from local.graph_emulator.routing import (
    API_VERSIONS,
    BETA,
    V1,
    Call,
    Request,
    Response,
    Router,
    RouteTable,
    api_version,
)
from local.graph_emulator.seed import DEFAULT_RANDOM_SEED, DemoTenant, seed_demo, seed_extra_users
from local.graph_emulator.store import TenantStore
from local.graph_emulator.throttle import TokenBucket, WriteBudget

API_PREFIX = "/v1.0"
BETA_PREFIX = "/beta"
ADMIN_PREFIX = "/_emulator"
SEEDS = ("demo", "empty")
MAX_EXTRA_USERS = 500_000
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Every Graph resource module; a new resource is one more entry here (a beta-only one declares
# ``RouteTable(versions=(BETA,))``: /beta serves it, /v1.0 answers an unknown segment).
GRAPH_ROUTE_TABLES: tuple[RouteTable, ...] = (
    users.routes,
    groups.routes,
    delta.routes,
    members.routes,
    batch.routes,
    tap.routes,
    mail.routes,
    drafts.routes,
    conditional_access.routes,
    named_locations.routes,
    registration.routes,
    auth_methods.routes,
    signins.routes,
    subscriptions.routes,
    identity_protection.routes,
    tenant_settings.routes,
    per_user_mfa.routes,
)
ADMIN_ROUTE_TABLES: tuple[RouteTable, ...] = (
    admin.routes,
    tap.admin_routes,
    mail.admin_routes,
    provisioning.admin_routes,
    registration.admin_routes,
    signins.admin_routes,
    subscriptions.admin_routes,
    identity_protection.admin_routes,
    tenant_settings.admin_routes,
    per_user_mfa.admin_routes,
)
# Run (under the lock) before every Graph request and $batch item, e.g. to let due users appear.
BEFORE_GRAPH_REQUEST: tuple[Callable[[Emulator], None], ...] = (provisioning.promote_due_users,)
# Run (under the lock) after every Graph request and $batch item with the membership changes it made.
AFTER_GRAPH_REQUEST: tuple[Callable[[Emulator, list[tuple[int, str, str, str]]], None], ...] = (
    subscriptions.notify_changes,
)
RESET_FIELDS = frozenset(
    {
        "seed",
        "randomSeed",
        "writeBudget",
        "snapshot",
        "timeScale",
        "rateLimits",
        identity_protection.RESET_FIELD,
        "permissions",
    }
)


@dataclass(frozen=True)
class EmulatorConfig:
    """What a reset builds: the seed, its random seed (or a snapshot) and the write budget."""

    seed: str = "demo"
    random_seed: int = DEFAULT_RANDOM_SEED
    write_budget: WriteBudget = field(default_factory=WriteBudget)
    snapshot: str | None = None
    time_scale: float = 1.0
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    identity_protection_budget: IdentityProtectionBudget = field(default_factory=IdentityProtectionBudget)
    extra_users: int = 0  # synthetic users added to the seed (``--users N``: a tenant at scale)
    # the application permissions the app holds; by default what a default deployment grants
    permissions: frozenset[str] = field(default_factory=permissions.infra_permissions)

    def __post_init__(self) -> None:
        EmulatorClock(self.time_scale)  # validates the scale
        if isinstance(self.extra_users, bool) or not isinstance(self.extra_users, int):
            raise ValueError(f"users must be an integer, got {self.extra_users!r}")
        if not 0 <= self.extra_users <= MAX_EXTRA_USERS:
            raise ValueError(f"users must be 0 to {MAX_EXTRA_USERS:,}, got {self.extra_users}")
        if self.seed not in SEEDS:
            raise ValueError(f"seed must be one of {', '.join(SEEDS)}, got {self.seed!r}")
        if isinstance(self.random_seed, bool) or not isinstance(self.random_seed, int):
            raise ValueError(f"randomSeed must be an integer, got {self.random_seed!r}")
        if not isinstance(self.permissions, frozenset) or not all(
            isinstance(p, str) for p in self.permissions
        ):
            raise ValueError(f"permissions must be a set of permission names, got {self.permissions!r}")

    def updated_from_json(self, raw: Any) -> EmulatorConfig:
        """This configuration with the fields of an admin ``reset`` body applied.

        Raises:
            ValueError: an unknown or invalid field (the message names it).
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError("the reset body must be a JSON object")
        unknown = set(raw) - RESET_FIELDS
        if unknown:
            raise ValueError(f"unknown reset fields: {', '.join(sorted(unknown))}")
        snapshot = raw.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, str):
            raise ValueError(f"snapshot must be a file path, got {snapshot!r}")
        budget = WriteBudget.from_json(raw["writeBudget"]) if "writeBudget" in raw else self.write_budget
        return replace(
            self,
            seed=raw.get("seed", "demo"),
            random_seed=raw.get("randomSeed", DEFAULT_RANDOM_SEED),
            write_budget=budget,
            snapshot=snapshot,
            time_scale=raw.get("timeScale", self.time_scale),
            rate_limits=(
                RateLimitConfig.from_json(raw["rateLimits"]) if "rateLimits" in raw else self.rate_limits
            ),
            identity_protection_budget=(
                IdentityProtectionBudget.from_json(raw[identity_protection.RESET_FIELD])
                if identity_protection.RESET_FIELD in raw
                else self.identity_protection_budget
            ),
            permissions=(
                permissions_from_json(raw["permissions"]) if "permissions" in raw else self.permissions
            ),
        )


def permissions_from_json(raw: Any) -> frozenset[str]:
    """The ``permissions`` reset field: a list of permission names, or "infra" or "all".

    Raises:
        ValueError: anything else.
    """
    if raw in ("infra", "all"):
        return permissions.resolve_permissions(str(raw))
    if not isinstance(raw, list) or not all(isinstance(name, str) and name for name in raw):
        raise ValueError(f'permissions must be a list of permission names, "infra" or "all", got {raw!r}')
    return frozenset(raw)


class Emulator:
    """One emulated tenant and the machinery around it; thread-safe."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.startup_config = config or EmulatorConfig()
        self.lock = threading.RLock()
        # one router per API version: /beta serves every /v1.0 route plus the beta-only ones
        self.graph_routers = {
            version: Router(GRAPH_ROUTE_TABLES, version=version) for version in API_VERSIONS
        }
        self.graph_router = self.graph_routers[V1]
        self.admin_router = Router(ADMIN_ROUTE_TABLES)
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.outbound = Outbound()
        self.config = self.startup_config
        self.store = TenantStore()
        self.demo: DemoTenant | None = None
        # groups the app created (POST /groups without the tenant-admin header): it owns them
        self.app_owned_groups: set[str] = set()
        self.write_bucket = TokenBucket(self.config.write_budget)
        self.clock = EmulatorClock(self.config.time_scale)
        self.rate_limits = RateLimiters(self.config.rate_limits, self.clock)
        self.identity_protection_bucket = IdentityProtectionBucket(
            self.config.identity_protection_budget, self.clock
        )
        self.reset(self.startup_config)

    def reset(self, config: EmulatorConfig) -> None:
        """Replace the tenant, refill the write budget, drop faults and the request log.

        Raises:
            ValueError: the snapshot cannot be read or parsed.
            OSError: the snapshot file cannot be opened.
        """
        store, demo = build_store(config)
        with self.lock:
            self.config = config
            self.store = store
            self.demo = demo
            self.app_owned_groups = set()
            self.write_bucket = TokenBucket(config.write_budget)
            self.clock = EmulatorClock(config.time_scale)
            self.rate_limits = RateLimiters(config.rate_limits, self.clock)
            self.identity_protection_bucket = IdentityProtectionBucket(
                config.identity_protection_budget, self.clock
            )
            self.faults.clear()
            self.requests.clear()
            self.outbound.clear()

    def handle(self, request: Request) -> Response:
        """Answer any request that reached the server."""
        path = request.path
        if api_version(path) is not None:
            return self.handle_graph(request)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return self._routed(request, self.admin_router, path[len(ADMIN_PREFIX) :])
        error = GraphError(
            404, "NotFound", f"No Graph API version or emulator admin path at '{path}'; use /v1.0 or /beta."
        )
        return self.error_response(request, error)

    def handle_graph(self, request: Request) -> Response:
        """Answer a Graph request or a $batch item: fault, route, write budget, handler, log.

        ``/beta/...`` is routed by the beta router (every /v1.0 route plus the beta-only ones);
        anything else as ``/v1.0``. Faults, permissions, the write budget and the log are shared.
        """
        started = time.perf_counter()
        injected = False
        beta = api_version(request.path) == BETA
        prefix = BETA_PREFIX if beta else API_PREFIX
        router = self.graph_routers[BETA if beta else V1]
        api_path = request.path[len(prefix) :] or "/"
        try:
            fault = self.faults.take(request.method, request.path)
            if fault is not None:
                injected = True
                raise fault.error()
            route, params = router.resolve_route(request.method, api_path)
            handler = route.handler
            self._authorize(request, route.pattern, params)
            if request.method in WRITE_METHODS and not _is_batch(api_path):
                self._spend_write_token()
            with self.lock:
                for hook in BEFORE_GRAPH_REQUEST:
                    hook(self)
                before = self.store.change_sequence
                response = handler(Call(request, params, self))
                changes = self.store.changes_since(before)
                for after in AFTER_GRAPH_REQUEST:
                    after(self, changes)
        except GraphError as exc:
            response = self.error_response(request, exc)
        except Exception:  # the emulator's own bug: answer like Graph's 500 and keep serving
            traceback.print_exc(file=sys.stderr)
            response = self.error_response(request, GraphError(500, "InternalServerError", "Emulator error."))
        self.requests.record(request, response.status, duration_ms=_ms_since(started), injected=injected)
        return response

    def reject(self, request: Request, error: GraphError) -> Response:
        """Answer (and log) a request that is refused without running, such as a 424 batch item."""
        response = self.error_response(request, error)
        self.requests.record(request, response.status, duration_ms=0.0, injected=False)
        return response

    def error_response(self, request: Request, error: GraphError) -> Response:
        body = error_body(
            error.code,
            error.message,
            request_id=request.request_id,
            client_request_id=request.client_request_id,
        )
        return Response(status=error.status, body=body, headers=dict(error.headers))

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seed": self.config.seed if self.config.snapshot is None else "snapshot",
                "randomSeed": self.config.random_seed,
                **self.store.counts(),
                "featureCounts": feature_counts(self.store),
                "writeBudget": {
                    **self.config.write_budget.to_json(),
                    "available": self.write_bucket.available(),
                },
                "timeScale": self.config.time_scale,
                "rateLimits": self.config.rate_limits.to_json(),
                "identityProtectionBudget": self.identity_protection_bucket.state(),
                "permissions": sorted(self.config.permissions),
                "faults": len(self.faults.to_json()),
                "requests": len(self.requests),
            }

    def _authorize(self, request: Request, pattern: str, params: dict[str, str]) -> None:
        """Refuse, as Graph does, a call the app's permissions do not cover (a tenant admin may all).

        Raises:
            GraphError: 403 Authorization_RequestDenied (ErrorAccessDenied for Exchange mail).
        """
        if permissions.is_tenant_admin(request.headers):
            return
        body: Any = None
        if request.method == "PATCH" and request.body.strip():
            try:
                body = request.json()
            except GraphError:
                body = None
        with self.lock:
            owned = set(self.app_owned_groups)
            granted = self.config.permissions
        if not permissions.allowed(
            request.method, pattern, granted=granted, params=params, body=body, owned_groups=owned
        ):
            code, message = permissions.denied_error(request.method, pattern)
            raise GraphError(403, code, message)

    def _spend_write_token(self) -> None:
        wait = self.write_bucket.take()
        if wait is not None:
            retry_after = self.write_bucket.retry_after_header(wait)
            raise GraphError(
                429,
                "TooManyRequests",
                "Too many requests: the application's identity write budget for this tenant is spent. "
                f"Retry after {retry_after} seconds.",
                headers={"Retry-After": retry_after},
            )

    def _routed(self, request: Request, router: Router, path: str) -> Response:
        try:
            handler, params = router.resolve(request.method, path or "/")
            with self.lock:
                return handler(Call(request, params, self))
        except GraphError as exc:
            return self.error_response(request, exc)


def build_store(config: EmulatorConfig) -> tuple[TenantStore, DemoTenant | None]:
    """A fresh store from the configuration's snapshot or seed."""
    if config.snapshot is not None:
        data = json.loads(Path(config.snapshot).read_text(encoding="utf-8"))
        return TenantStore.from_json(data), None
    store = TenantStore()
    demo = seed_demo(store, random_seed=config.random_seed) if config.seed == "demo" else None
    if config.extra_users:
        seed_extra_users(store, config.extra_users, random_seed=config.random_seed)
    return store, demo


def feature_counts(store: TenantStore) -> dict[str, int]:
    """Per extension, how many items it holds (TAPs issued, messages sent, policies ...)."""
    counts: dict[str, int] = {}
    for name, extension in sorted(store.extensions.items()):
        count = getattr(extension, "count", None)
        if callable(count):
            counts[name] = int(count())
    return counts


def _is_batch(api_path: str) -> bool:
    return api_path.strip("/").lower() == "$batch"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
