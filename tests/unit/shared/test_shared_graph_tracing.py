"""Graph calls in the trace: one client span per call, traceparent on the wire, Kiota folded away."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared.config import BreakGlass, load_settings
from shared.errors import PermanentError
from shared.graph import build_graph_client
from shared.graph.client import get_json
from shared.graph.tracing import path_template
from shared.telemetry import configure_telemetry, folded_scope, span

EXPORTER = InMemorySpanExporter()
SETTINGS = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0", "GRAPH_TIMEOUT_SECONDS": "4"})
BREAK_GLASS = BreakGlass.model_validate(
    {
        "accounts": [{"id": "0b5e5b1e-0000-4000-8000-0000000000b1"}],
        "exclusionGroup": {"id": "0b5e5b1e-0000-4000-8000-00000000e0e0"},
    }
)
USER_ID = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "off"}), span_exporters=[EXPORTER])
    EXPORTER.clear()
    return EXPORTER


def _client(handler: httpx.MockTransport) -> object:
    return build_graph_client(
        SETTINGS, http_client=httpx.AsyncClient(transport=handler), break_glass=BREAK_GLASS
    )


async def test_a_graph_call_is_one_client_span_whose_traceparent_reaches_graph(
    spans: InMemorySpanExporter,
) -> None:
    # GIVEN Graph answers a read, and the call is made inside a worker span
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": USER_ID}, headers={"request-id": "req-7"})

    graph = _client(httpx.MockTransport(answer))
    with span("process employee.hired", kind=SpanKind.CONSUMER):
        await get_json(graph, "/users/ada@contoso.com?$select=id")  # type: ignore[arg-type]
    # THEN the only spans are the worker's and one CLIENT span for the call (Kiota's are folded)
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["GET /v1.0/users/{key}", "process employee.hired"]
    call, worker = finished
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None
    assert worker.context is not None
    assert call.context is not None
    assert call.parent.span_id == worker.context.span_id
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["graph.request_id"] == "req-7"
    assert "ada@contoso.com" not in str(dict(call.attributes))  # no UPN in the trace
    # AND Graph received the call's own span as traceparent
    version, trace_id, parent_id, _flags = seen[0].headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{call.context.trace_id:032x}",
        f"{call.context.span_id:016x}",
    )


async def test_a_retried_call_is_one_span_with_one_traceparent_and_a_failure_marks_it(
    spans: InMemorySpanExporter,
) -> None:
    # GIVEN Graph throttles once (Retry-After 0), then refuses with a 403
    answers = [
        httpx.Response(429, json={"error": {"code": "TooManyRequests"}}, headers={"Retry-After": "0"}),
        httpx.Response(403, json={"error": {"code": "Authorization_RequestDenied", "message": "no"}}),
    ]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    graph = _client(httpx.MockTransport(answer))
    with pytest.raises(PermanentError), span("worker"):
        await get_json(graph, f"/users/{USER_ID}/memberOf")  # type: ignore[arg-type]
    # THEN both attempts carried the same traceparent, and one span records the failure
    assert len(seen) == 2
    assert seen[0].headers["traceparent"] == seen[1].headers["traceparent"]
    calls = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert [c.name for c in calls] == ["GET /v1.0/users/{id}/memberOf"]
    assert calls[0].status.status_code is StatusCode.ERROR
    assert calls[0].attributes is not None
    assert calls[0].attributes["http.response.status_code"] == 403


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1.0/users/ada@contoso.com", "/v1.0/users/{key}"),
        (f"/v1.0/groups/{USER_ID}/members/$ref", "/v1.0/groups/{id}/members/$ref"),
        ("/v1.0/$batch", "/v1.0/$batch"),
        ("/v1.0/users/microsoft.graph.delta()", "/v1.0/users/microsoft.graph.delta()"),
        ("/beta/users/12345/authentication/requirements", "/beta/users/{key}/authentication/requirements"),
        ("/v1.0/users/ada'O'Brien", "/v1.0/users/{key}"),
    ],
)
def test_span_names_keep_graph_resources_and_hide_keys(path: str, template: str) -> None:
    assert path_template(path) == template


def test_only_kiota_scopes_are_folded() -> None:
    assert folded_scope("com.microsoft.com:microsoft-kiota-http-httpx")
    assert folded_scope("microsoft-python-kiota-abstractions")
    assert not folded_scope("waveguard")
    assert not folded_scope("azure.storage.queue")
