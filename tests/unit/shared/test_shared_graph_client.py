"""The Graph client over httpx.MockTransport: the SDK's real middleware, our retry rules, error mapping."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from shared.config import APP_ROOT, BreakGlass, load_settings
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph import (
    build_graph_client,
    get_graph_client,
    graph_error_info,
    graph_health,
    parse_retry_after,
    reset_graph_clients,
    to_waveguard_error,
)

EMULATOR = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0", "GRAPH_TIMEOUT_SECONDS": "4"})
USER = {"id": "11111111-1111-1111-1111-111111111111", "userPrincipalName": "ada@contoso.com"}


class Recorder:
    """A MockTransport handler answering from a script and recording every request."""

    def __init__(self, *responses: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        return answer(request) if callable(answer) else answer


def _odata(status: int, code: str, message: str = "", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "req-1"}}}
    return httpx.Response(status, json=body, headers={"request-id": "req-1", **headers})


# By id: the break-glass guard needs no Graph read to know whom it protects.
BREAK_GLASS = BreakGlass.model_validate(
    {
        "accounts": [{"id": "0b5e5b1e-0000-4000-8000-0000000000b1"}],
        "exclusionGroup": {"id": "0b5e5b1e-0000-4000-8000-00000000e0e0"},
    }
)


def _client(recorder: Recorder, **kwargs: Any) -> Any:
    kwargs.setdefault("break_glass", BREAK_GLASS)
    return build_graph_client(
        EMULATOR, http_client=httpx.AsyncClient(transport=httpx.MockTransport(recorder)), **kwargs
    )


async def test_a_429_with_retry_after_is_retried_by_the_middleware_after_waiting() -> None:
    # GIVEN Graph throttles once with a fractional Retry-After, then answers
    recorder = Recorder(
        _odata(429, "TooManyRequests", **{"Retry-After": "0.3"}), httpx.Response(200, json=USER)
    )
    client = _client(recorder)
    # WHEN a user is read
    user = await client.users.by_user_id(USER["id"]).get()
    # THEN the SDK retried once, after at least the Retry-After, and the caller got the user
    assert user is not None
    assert user.user_principal_name == "ada@contoso.com"
    assert len(recorder.requests) == 2
    assert recorder.times[1] - recorder.times[0] >= 0.3
    assert recorder.requests[1].headers["Retry-Attempt"] == "1"
    assert str(recorder.requests[0].url) == f"http://127.0.0.1:7072/v1.0/users/{USER['id']}"


async def test_a_retry_after_beyond_the_in_process_budget_goes_back_to_the_queue() -> None:
    recorder = Recorder(_odata(429, "TooManyRequests", "slow down", **{"Retry-After": "2.128"}))
    client = _client(recorder, max_retry_wait=1.0)
    with pytest.raises(ODataError) as caught:
        await client.users.by_user_id(USER["id"]).get()
    error = to_waveguard_error(caught.value, operation="get user")
    assert len(recorder.requests) == 1
    assert isinstance(error, RetryableError)
    assert error.retry_after == 2.128
    assert error.context["code"] == "TooManyRequests"
    assert "get user" in str(error)


async def test_a_503_exhausts_the_retries_then_is_retryable() -> None:
    recorder = Recorder(_odata(503, "serviceNotAvailable", **{"Retry-After": "0.01"}))
    client = _client(recorder, max_retries=2)
    with pytest.raises(ODataError) as caught:
        await client.users.by_user_id(USER["id"]).get()
    assert len(recorder.requests) == 3
    assert isinstance(to_waveguard_error(caught.value), RetryableError)


async def test_a_post_that_timed_out_at_the_gateway_is_not_replayed() -> None:
    recorder = Recorder(_odata(504, "GatewayTimeout", **{"Retry-After": "0.01"}))
    client = _client(recorder)
    with pytest.raises(ODataError) as caught:
        await client.groups.post(body=_group())
    assert len(recorder.requests) == 1
    assert isinstance(to_waveguard_error(caught.value), RetryableError)


def _group() -> Any:
    from msgraph.generated.models.group import Group

    return Group(display_name="WaveGuard - Wave 1 Pilot", mail_enabled=False, security_enabled=True)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_odata(404, "Request_ResourceNotFound", "Resource does not exist"), NotFoundError),
        (_odata(403, "Authorization_RequestDenied", "Insufficient privileges"), PermanentError),
        (
            _odata(400, "Request_BadRequest", "One or more added object references already exist"),
            PermanentError,
        ),
        (_odata(503, "serviceNotAvailable"), RetryableError),
    ],
)
async def test_odata_errors_map_to_our_errors(response: httpx.Response, expected: type[Exception]) -> None:
    client = _client(Recorder(response), max_retries=0)
    with pytest.raises(ODataError) as caught:
        await client.users.by_user_id(USER["id"]).get()
    error = to_waveguard_error(caught.value)
    assert type(error) is expected
    info = graph_error_info(caught.value)
    assert info is not None
    assert info.status == response.status_code
    assert info.request_id == "req-1"
    assert error.context["code"] == json.loads(response.content)["error"]["code"]


def test_transport_failures_and_timeouts_are_retryable() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:7072/v1.0/users")
    assert isinstance(to_waveguard_error(httpx.ReadTimeout("slow", request=request)), RetryableError)
    assert isinstance(to_waveguard_error(httpx.ConnectError("refused", request=request)), RetryableError)
    assert isinstance(to_waveguard_error(KeyError("surprise")), RetryableError)
    already = NotFoundError("x")
    assert to_waveguard_error(already) is already


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2.128", 2.128), ("3", 3.0), ("0", 0.0), ("-1", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Tue, 01 Dec 2026 08:00:30 GMT", now=now) == 30.0


class FakeCredential:
    """A TokenCredential that hands out a fixed token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)


async def test_graph_itself_gets_a_bearer_token_for_the_graph_scope() -> None:
    recorder = Recorder(httpx.Response(200, json=USER))
    credential = FakeCredential()
    settings = load_settings({})
    transport = httpx.MockTransport(recorder)
    client = build_graph_client(
        settings, http_client=httpx.AsyncClient(transport=transport), credential=credential
    )
    await client.users.by_user_id(USER["id"]).get()
    assert recorder.requests[0].headers["Authorization"] == "Bearer fake-token"
    assert str(recorder.requests[0].url).startswith("https://graph.microsoft.com/v1.0/users/")
    assert credential.scopes == [("https://graph.microsoft.com/.default",)]


async def test_every_call_still_carries_what_graph_and_its_support_read_after_the_unused_steps_went() -> None:
    # GIVEN the client for Graph itself as built (kiota's /me rewrite and inspection hooks left out)
    recorder = Recorder(httpx.Response(200, json=USER))
    client = build_graph_client(
        load_settings({}),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(recorder)),
        credential=FakeCredential(),
        break_glass=BREAK_GLASS,
    )

    # WHEN the SDK reads a user with $select
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=["id"])
    await client.users.by_user_id(USER["id"]).get(RequestConfiguration(query_parameters=query))

    # THEN the request keeps the user agent, Graph's client-request-id and SDK version, and
    # query names decoded ($select, not %24select)
    [sent] = recorder.requests
    assert "kiota-python" in sent.headers["User-Agent"]
    assert sent.headers["client-request-id"]
    assert "graph-python" in sent.headers["SdkVersion"]
    assert "$select=id" in str(sent.url)
    assert "%24select" not in str(sent.url)


async def test_the_loopback_emulator_gets_no_microsoft_token_and_explicit_timeouts() -> None:
    recorder = Recorder(httpx.Response(200, json=USER))
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    build_graph_client(EMULATOR, http_client=http_client)
    assert http_client.timeout == httpx.Timeout(4.0, connect=4.0)
    client = _client(recorder)
    await client.users.by_user_id(USER["id"]).get()
    assert "Authorization" not in recorder.requests[0].headers


async def test_the_health_probe_reports_reachable_and_unreachable() -> None:
    healthy = _client(Recorder(httpx.Response(200, json={"value": [{"id": USER["id"]}]})))
    broken = _client(Recorder(_odata(403, "Authorization_RequestDenied")), max_retries=0)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    timing_out = _client(Recorder(slow), max_retries=0)
    assert await graph_health(healthy)
    assert not await graph_health(broken)
    assert not await graph_health(timing_out)


async def test_one_cached_client_per_event_loop_and_settings() -> None:
    reset_graph_clients()
    first = get_graph_client(EMULATOR)
    assert get_graph_client(EMULATOR) is first
    other = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0"})
    assert get_graph_client(other) is not first
    reset_graph_clients()


def test_importing_shared_graph_does_not_load_msgraph() -> None:
    code = "import sys, shared.graph, shared.graph.errors; print('msgraph' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
