"""Requests, responses and the route tables every resource module registers its handlers in.

A resource module owns one ``RouteTable`` and decorates its handlers::

    routes = RouteTable()

    @routes.get("/users/{user_id}")
    def get_user(call: Call) -> Response: ...

The emulator composes the tables into one ``Router``; adding a resource (TAP, sendMail, delta ...)
is a new module with its own table, never an edit to a dispatcher.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.store import TenantStore

if TYPE_CHECKING:
    from local.graph_emulator.app import Emulator

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
# Graph's API versions: the path prefix of each. ``/beta`` serves every ``/v1.0`` route plus the
# routes of beta-only tables (``RouteTable(versions=(BETA,))``).
V1 = "v1.0"
BETA = "beta"
API_VERSIONS: tuple[str, ...] = (V1, BETA)


def api_version(path: str) -> str | None:
    """The API version a request path is under (``/v1.0/...`` or ``/beta/...``), else None."""
    for version in API_VERSIONS:
        prefix = f"/{version}"
        if path == prefix or path.startswith(prefix + "/"):
            return version
    return None


def request_version(request: Request) -> str:
    """The API version a Graph request (or $batch item) is served under; ``v1.0`` unless ``/beta``."""
    return BETA if api_version(request.path) == BETA else V1


@dataclass
class Request:
    """One HTTP request (or one ``$batch`` item) as the handlers see it."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    request_id: str = ""
    client_request_id: str = ""
    origin: str = "http://127.0.0.1"
    batch_id: str | None = None
    batch_item_id: str | None = None

    @property
    def traceparent(self) -> str | None:
        """The caller's W3C ``traceparent`` header (a batch item's comes from its batch)."""
        return self.header("traceparent")

    def header(self, name: str) -> str | None:
        """A header's value, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def query_value(self, name: str) -> str | None:
        """The value of a query parameter (the last one wins), or None."""
        found = None
        for key, value in self.query:
            if key == name:
                found = value
        return found

    def json(self) -> Any:
        """The decoded JSON body.

        Raises:
            GraphError: the body is empty or not JSON (Graph's 400 wording).
        """
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and "
                "payload is of valid JSON format.",
            ) from None

    def json_object(self) -> JsonObject:
        """The JSON body, which must be an object."""
        body = self.json()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.", code="BadRequest")
        return body


@dataclass
class Response:
    """What a handler answers; the server turns it into bytes."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_CONTENT_TYPE

    @classmethod
    def json(cls, body: Any, status: int = 200) -> Response:
        return cls(status=status, body=body)

    @classmethod
    def no_content(cls) -> Response:
        return cls(status=204)

    @classmethod
    def text(cls, body: str, status: int = 200) -> Response:
        return cls(status=status, body=body, content_type="text/plain;charset=utf-8")

    def encoded_body(self) -> bytes:
        """The body as bytes on the wire."""
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


@dataclass
class Call:
    """A routed request: the request, the path parameters and the emulator serving it."""

    request: Request
    params: dict[str, str]
    emulator: Emulator

    @property
    def store(self) -> TenantStore:
        return self.emulator.store


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Path parameters when ``parts`` fits this route, else None."""
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, part in zip(self.segments, parts, strict=True):
            if _is_param(pattern):
                params[pattern[1:-1]] = part
            elif pattern.casefold() != part.casefold():
                return None
        return params

    def matched_prefix(self, parts: list[str]) -> int:
        """How many leading segments of ``parts`` this route accepts (for the 'segment' error)."""
        count = 0
        for pattern, part in zip(self.segments, parts, strict=False):
            if not _is_param(pattern) and pattern.casefold() != part.casefold():
                break
            count += 1
        return count

    @property
    def pattern(self) -> str:
        """The path pattern as registered, e.g. ``/users/{user_id}``."""
        return "/" + "/".join(self.segments)

    def specificity(self) -> tuple[int, ...]:
        """Literal segments sort before parameters, so /users/$count wins over /users/{id}."""
        return tuple(1 if _is_param(s) else 0 for s in self.segments)


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def split_path(path: str) -> list[str]:
    """Path segments, each URL-decoded on its own (so an encoded '/' stays inside its segment)."""
    return [unquote(part) for part in path.strip("/").split("/") if part != ""]


class RouteTable:
    """The routes one resource module serves, registered with decorators.

    ``versions`` are the Graph API versions that serve them: every version by default, or
    ``(BETA,)`` for a beta-only resource (a ``/v1.0`` call to it is an unknown segment, as on Graph).
    """

    def __init__(self, *, versions: Iterable[str] = API_VERSIONS) -> None:
        self.routes: list[Route] = []
        self.versions = frozenset(versions)
        unknown = self.versions - set(API_VERSIONS)
        if unknown or not self.versions:
            raise ValueError(
                f"versions must be some of {', '.join(API_VERSIONS)}, got {sorted(self.versions)}"
            )

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        segments = tuple(part for part in pattern.strip("/").split("/") if part)

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method.upper(), segments, handler))
            return handler

        return register

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("GET", pattern)

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("POST", pattern)

    def patch(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("PATCH", pattern)

    def put(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", pattern)

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", pattern)


class Router:
    """Finds the handler for a method and a path among the composed route tables."""

    def __init__(self, tables: Iterable[RouteTable], *, version: str | None = None) -> None:
        """Compose ``tables``; with a ``version``, only the tables that version serves."""
        routes = [
            route
            for table in tables
            if version is None or version in table.versions
            for route in table.routes
        ]
        self._routes = sorted(routes, key=Route.specificity)

    @property
    def routes(self) -> list[Route]:
        """Every route, most specific first."""
        return list(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters for a request path relative to the API root.

        Raises:
            GraphError: no route has this path (400, as Graph) or none allows this method (405).
        """
        route, params = self.resolve_route(method, path)
        return route.handler, params

    def resolve_route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and path parameters for a request path relative to the API root.

        Raises:
            GraphError: no route has this path (400, as Graph) or none allows this method (405).
        """
        parts = split_path(path)
        path_matched = False
        for route in self._routes:
            params = route.match(parts)
            if params is None:
                continue
            if route.method == method.upper():
                return route, params
            path_matched = True
        if path_matched:
            raise GraphError(
                405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            )
        raise bad_request(
            f"Resource not found for the segment '{self._unmatched_segment(parts)}'.", code="BadRequest"
        )

    def _unmatched_segment(self, parts: list[str]) -> str:
        if not parts:
            return ""
        best = max((route.matched_prefix(parts) for route in self._routes), default=0)
        return parts[min(best, len(parts) - 1)]
