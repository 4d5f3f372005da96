"""HTTP triggers over a real socket: routes, methods, keys, errors, limits, keep-alive, request logs."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from minihost_helpers import RunningHost, StartHost

pytestmark = pytest.mark.functional

FUNCTION_KEY = "fixture-function-key"  # from tests/fixtures/minihost_app/local.settings.json
MASTER_KEY = "fixture-master-key"


@pytest.fixture
def running(start_host: StartHost) -> RunningHost:
    return start_host()


@pytest.fixture
def client(running: RunningHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.api, timeout=10) as http:
        yield http


def test_route_parameters_query_and_headers_reach_the_function(
    client: httpx.Client, running: RunningHost
) -> None:
    # WHEN GET /api/items/42 with a query and a header
    response = client.get("/items/42", params={"expand": "true"}, headers={"X-Test-Header": "hello"})
    # THEN the function saw them, and its status, headers and mimetype come back
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-item"] == "yes"
    assert response.json() == {
        "id": "42",
        "params": {"expand": "true"},
        "method": "GET",
        "url": f"{running.api}/items/42?expand=true",
        "header": "hello",
    }


def test_optional_and_constrained_route_parameters(client: httpx.Client) -> None:
    assert client.get("/orders/12").json() == {"number": "12"}
    assert client.get("/orders/12/rush").json() == {"number": "12", "note": "rush"}
    assert client.get("/orders/twelve").status_code == 404  # {number:int} does not match


def test_a_post_body_reaches_the_function_and_201_with_location_comes_back(client: httpx.Client) -> None:
    response = client.post("/items", json={"id": "7", "name": "Zoë"})
    assert response.status_code == 201
    assert response.headers["location"] == "/api/items/7"
    assert response.json()["received"] == {"id": "7", "name": "Zoë"}


def test_a_chunked_request_body_is_read(client: httpx.Client) -> None:
    # GIVEN a body sent with Transfer-Encoding: chunked (no Content-Length)
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "9", '
        yield b'"name": "chunked"}'

    response = client.post("/items", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201
    assert response.json() == {"received": {"id": "9", "name": "chunked"}, "bytes": 30}


def test_a_route_with_another_method_is_405_and_says_what_is_allowed(client: httpx.Client) -> None:
    response = client.delete("/items/42")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_an_unknown_route_is_404(client: httpx.Client) -> None:
    assert client.get("/no/such/route").status_code == 404


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({}, {}, 401),
        ({"code": "wrong-key"}, {}, 401),
        ({}, {"x-functions-key": "wrong-key"}, 401),
        ({"code": FUNCTION_KEY}, {}, 200),
        ({}, {"x-functions-key": FUNCTION_KEY}, 200),
    ],
)
def test_a_function_level_route_needs_a_valid_key(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    response = client.get("/secure", params=params, headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response.text == "secret area"


def test_an_admin_route_takes_only_the_master_key(client: httpx.Client) -> None:
    assert client.get("/admin-only", params={"code": FUNCTION_KEY}).status_code == 401
    assert client.get("/admin-only", headers={"x-functions-key": MASTER_KEY}).status_code == 200


def test_an_exception_is_a_500_json_body_without_the_trace(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # WHEN the function raises
    caplog.set_level(logging.INFO, logger="minihost")
    response = client.get("/boom")
    # THEN the client gets a JSON 500 with the invocation id and no internals
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "Internal Server Error"
    assert body["function"] == "boom"
    assert "kaboom" not in response.text
    assert "Traceback" not in response.text
    # AND the log has the trace, tagged with the function and invocation
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "minihost.http"]
    assert failure.exc_info is not None
    assert (getattr(failure, "function_name", None), getattr(failure, "invocation_id", None)) == (
        "boom",
        body["invocationId"],
    )


def test_each_request_is_logged_once_with_method_path_status_and_duration(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="minihost")
    client.get("/items/5")
    client.get("/missing")
    lines = [r for r in caplog.records if hasattr(r, "http_status")]
    seen = [(r.http_method, r.http_path, r.http_status, r.function_name) for r in lines]  # type: ignore[attr-defined]
    assert seen == [("GET", "/api/items/5", 200, "get_item"), ("GET", "/api/missing", 404, "")]
    assert all(isinstance(r.duration_ms, float) for r in lines)  # type: ignore[attr-defined]


def test_string_returns_async_functions_and_the_context_argument(client: httpx.Client) -> None:
    text = client.get("/text")
    assert (text.status_code, text.text, text.headers["content-type"]) == (
        200,
        "just a string",
        "text/plain; charset=utf-8",
    )
    body = client.get("/async/3").json()
    assert body["n"] == 3
    assert body["function_name"] == "async_http"
    assert body["thread"] == "minihost-asyncio"
    assert len(body["invocation_id"]) == 36


def test_relative_files_are_read_from_the_app_directory(client: httpx.Client) -> None:
    assert client.get("/cwd").json()["host_json_chars"] > 0


def test_a_body_over_100_mb_is_refused_with_413_before_it_is_read(running: RunningHost) -> None:
    # GIVEN a request announcing 100 MB + 1 byte WHEN only the headers are sent THEN 413 comes back at once
    with socket.create_connection(("127.0.0.1", running.host.http_port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857601\r\n\r\n"
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413 ")


def test_keep_alive_connections_serve_many_requests(running: RunningHost) -> None:
    with httpx.Client(base_url=running.api, timeout=10) as http:
        statuses = [http.get("/health").status_code for _ in range(20)]
    assert statuses == [200] * 20


def test_stop_closes_the_port_and_idle_connections(running: RunningHost) -> None:
    # GIVEN an idle keep-alive connection
    port = running.host.http_port
    with httpx.Client(base_url=running.api, timeout=5) as http:
        assert http.get("/health").json() == {"status": "ok"}
        # WHEN the host stops THEN nothing listens any more
        running.host.stop()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        with pytest.raises(httpx.TransportError):
            http.get("/health")


def test_stalled_clients_are_dropped_after_the_read_timeout_and_release_their_threads(
    start_host: StartHost,
) -> None:
    import threading

    # GIVEN a host whose read timeout is short, and the threads it runs before any client
    running = start_host(http_read_timeout=0.5)
    port = running.host.http_port
    baseline = threading.active_count()
    # WHEN 40 clients send headers announcing a body that never comes, and 40 send nothing at all
    body_stalled = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
    for sock in body_stalled:
        sock.sendall(b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
    try:
        # THEN the host still answers others meanwhile
        with httpx.Client(base_url=running.api, timeout=10) as http:
            assert http.get("/health").status_code == 200
        # AND each stalled body gets 408 and a closed connection; each silent client is closed
        for sock in body_stalled:
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")
        for sock in silent:
            assert sock.recv(4096) == b""
    finally:
        for sock in body_stalled + silent:
            sock.close()
    # AND the threads that served them are gone
    from tests.waiting import wait_for

    wait_for("the stalled connections' threads to end", lambda: threading.active_count() <= baseline + 2)
