"""The HTTP front end without sockets: routing, methods, keys, request building and responses."""

from __future__ import annotations

import json
from collections.abc import Iterator

import azure.functions as func
import pytest

from local.minihost.http_server import HttpFrontend, Request, Response
from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import read_functions

KEYS = {"default": "function-key", "ops": "second-key", "_master": "master-key"}


def build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{id}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "route": dict(req.route_params),
            "params": dict(req.params),
            "url": req.url,
            "method": req.method,
            "agent": req.headers.get("User-Agent"),
            "body": req.get_body().decode(),
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json", headers={"X-Seen": "1"})

    @app.route(route="items/{id}", methods=["PUT"])
    def put_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="items/new", methods=["GET"])
    def new_item_form(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("form")

    @app.route(route="secure", auth_level=func.AuthLevel.FUNCTION)
    def secure(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("secret")

    @app.route(route="admin", auth_level=func.AuthLevel.ADMIN)
    def admin(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("admin")

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("database password is hunter2")

    @app.route(route="text")
    def text(req: func.HttpRequest) -> str:
        return "plain"

    @app.route(route="nothing")
    def nothing(req: func.HttpRequest) -> None:
        return None

    @app.route(route="wrong-type")
    def wrong_type(req: func.HttpRequest) -> dict[str, str]:
        return {"not": "a response"}

    @app.route(route="async")
    async def in_loop(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"function": context.function_name, "id": context.invocation_id}))

    return app


@pytest.fixture
def frontend() -> Iterator[HttpFrontend]:
    loop = EventLoopThread()
    loop.start()
    specs = read_functions(build_app(), app_ref="t:app", directory="/app", environ={})
    try:
        yield HttpFrontend(specs, route_prefix="api", function_keys=KEYS, invoker=Invoker(loop))
    finally:
        loop.stop()


def call(frontend: HttpFrontend, method: str, target: str, headers: dict[str, str] | None = None) -> Response:
    request = Request(method, target, headers or {}, b"", "http://127.0.0.1:7071")
    return frontend.handle(request)


def test_a_request_reaches_the_function_with_route_params_query_headers_and_url(
    frontend: HttpFrontend,
) -> None:
    # WHEN GET /api/items/42?tag=a&tag=b
    response = call(frontend, "GET", "/api/items/42?tag=a&tag=b", {"user-agent": "pytest"})
    # THEN the function saw everything Azure would give it, and its response comes back as built
    assert response.status == 200
    assert json.loads(response.body) == {
        "route": {"id": "42"},
        "params": {"tag": "a,b"},
        "url": "http://127.0.0.1:7071/api/items/42?tag=a&tag=b",
        "method": "GET",
        "agent": "pytest",
        "body": "",
    }
    assert ("X-Seen", "1") in response.headers
    assert ("Content-Type", "application/json") in response.headers
    assert response.function_name == "get_item"


def test_literal_routes_win_over_parameter_routes(frontend: HttpFrontend) -> None:
    assert call(frontend, "GET", "/api/items/new").body == b"form"


def test_a_known_route_with_another_method_is_405_with_allow(frontend: HttpFrontend) -> None:
    response = call(frontend, "POST", "/api/items/42")
    assert response.status == 405
    assert ("Allow", "GET, PUT") in response.headers


def test_unknown_paths_and_paths_outside_the_prefix_are_404(frontend: HttpFrontend) -> None:
    assert call(frontend, "GET", "/api/nothing-here").status == 404
    assert call(frontend, "GET", "/items/42").status == 404


@pytest.mark.parametrize(
    ("target", "headers", "status"),
    [
        ("/api/secure", {}, 401),
        ("/api/secure?code=wrong", {}, 401),
        ("/api/secure", {"x-functions-key": "wrong"}, 401),
        ("/api/secure?code=function-key", {}, 200),
        ("/api/secure?code=second-key", {}, 200),
        ("/api/secure", {"x-functions-key": "function-key"}, 200),
        ("/api/secure?code=master-key", {}, 200),
        ("/api/admin?code=function-key", {}, 401),
        ("/api/admin", {"x-functions-key": "master-key"}, 200),
    ],
)
def test_keys_guard_function_and_admin_routes(
    frontend: HttpFrontend, target: str, headers: dict[str, str], status: int
) -> None:
    assert call(frontend, "GET", target, headers).status == status


def test_an_exception_is_a_500_with_a_json_body_and_no_details(frontend: HttpFrontend) -> None:
    # WHEN the function raises THEN the caller gets a JSON 500 naming the invocation, never the message
    response = call(frontend, "GET", "/api/boom")
    assert response.status == 500
    body = json.loads(response.body)
    assert body == {
        "error": "Internal Server Error",
        "function": "boom",
        "invocationId": response.invocation_id,
    }
    assert b"hunter2" not in response.body
    assert b"Traceback" not in response.body


def test_string_none_and_wrong_return_values(frontend: HttpFrontend) -> None:
    text = call(frontend, "GET", "/api/text")
    assert (text.status, text.body) == (200, b"plain")
    assert ("Content-Type", "text/plain; charset=utf-8") in text.headers
    assert call(frontend, "GET", "/api/nothing").status == 204
    assert call(frontend, "GET", "/api/wrong-type").status == 500


def test_async_functions_get_a_context_with_the_invocation_id(frontend: HttpFrontend) -> None:
    response = call(frontend, "GET", "/api/async")
    assert json.loads(response.body) == {"function": "in_loop", "id": response.invocation_id}


def test_an_empty_route_prefix_serves_from_the_root() -> None:
    specs = read_functions(build_app(), app_ref="t:app", directory="/app", environ={})
    frontend = HttpFrontend(specs, route_prefix="", function_keys=KEYS, invoker=Invoker(EventLoopThread()))
    assert call(frontend, "GET", "/text").body == b"plain"


def test_a_multi_segment_route_prefix_is_honoured() -> None:
    specs = read_functions(build_app(), app_ref="t:app", directory="/app", environ={})
    frontend = HttpFrontend(
        specs, route_prefix="v1/api", function_keys=KEYS, invoker=Invoker(EventLoopThread())
    )
    assert call(frontend, "GET", "/v1/api/text").body == b"plain"
    assert call(frontend, "GET", "/v1/text").status == 404
