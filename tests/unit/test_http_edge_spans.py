"""Every HTTP trigger the app declares opens a SERVER span that continues the caller's
``traceparent``: the trace an HR system, Graph or a help desk starts runs on into WaveGuard.

The app is loaded as Azure loads it (``function_app.py``, every blueprint) and each HTTP function is
called directly with no usable settings: it may answer 4xx or 5xx (nothing to serve it with); what
is checked is its edge span.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from handlers.http_edge import ROUTE_PREFIX
from shared.config import load_settings
from shared.telemetry import configure_telemetry

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = InMemorySpanExporter()
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"
# Settings that would let a function reach storage, Graph or an exporter, or warm up: all left out.
_LEFT_OUT = (
    "AzureWebJobs",
    "GRAPH_",
    "WAVEGUARD_",
    "APPLICATIONINSIGHTS_",
    "OTEL_",
    "PAGERDUTY_",
    "TEAMS_",
    "PYTHON_ENABLE_OPENTELEMETRY",
)


def _without_settings(env: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(_LEFT_OUT)]:
        env.delenv(name)
    env.setenv("WAVEGUARD_WARM_START", "false")
    env.setenv("WAVEGUARD_TELEMETRY", "off")


@pytest.fixture(scope="module")
def http_functions() -> dict[str, Any]:
    """{function name: function}, for every HTTP trigger of the app, loaded with no settings."""
    with pytest.MonkeyPatch.context() as env:
        _without_settings(env)
        # A private module object: get_functions() works once per app (as in test_wiring.py).
        spec = importlib.util.spec_from_file_location("function_app_edge_spans", ROOT / "function_app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        functions = module.app.get_functions()
    return {
        fn.get_function_name(): fn
        for fn in functions
        if fn.get_trigger().get_dict_repr()["type"] == "httpTrigger"
    }


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    _without_settings(monkeypatch)
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "off"}), span_exporters=[EXPORTER])
    EXPORTER.clear()
    return EXPORTER


def _call(fn: Any, method: str, route: str) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method,
        url=f"http://127.0.0.1:7071/{ROUTE_PREFIX}/{route}",
        headers={"traceparent": TRACEPARENT, "content-type": "application/json"},
        params={},
        route_params={},
        body=b"{}" if method == "POST" else b"",
    )
    outcome = fn.get_user_function()(request)
    response = asyncio.run(outcome) if inspect.isawaitable(outcome) else outcome
    assert isinstance(response, func.HttpResponse)
    return response


def _server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]


def test_the_app_declares_its_http_ingresses(http_functions: dict[str, Any]) -> None:
    # health, HR, the help desk, Graph's notifications, Azure Monitor alerts, the report
    assert len(http_functions) >= 10, sorted(http_functions)


def test_every_http_trigger_opens_a_server_span_continuing_the_callers_traceparent(
    http_functions: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    wrong: dict[str, str] = {}
    for name, fn in sorted(http_functions.items()):
        trigger = fn.get_trigger().get_dict_repr()
        route, method = trigger["route"], trigger["methods"][0]
        method = getattr(method, "value", method)
        spans.clear()
        response = _call(fn, method, route)
        template = f"/{ROUTE_PREFIX}/{route}"
        server = _server_spans(spans)
        if len(server) != 1:
            wrong[name] = f"{len(server)} SERVER spans (answered {response.status_code})"
            continue
        [edge] = server
        problems = [
            problem
            for problem, failed in (
                (f"trace id {edge.context.trace_id:032x}", edge.context.trace_id != TRACE_ID),
                (f"parent {edge.parent}", edge.parent is None or edge.parent.span_id != CALLER_SPAN_ID),
                ("parent not remote", edge.parent is not None and not edge.parent.is_remote),
                (f"name {edge.name!r}", edge.name != f"{method} {template}"),
                ("http.route", (edge.attributes or {}).get("http.route") != template),
                (
                    "http.response.status_code",
                    (edge.attributes or {}).get("http.response.status_code") != response.status_code,
                ),
            )
            if failed
        ]
        if problems:
            wrong[name] = ", ".join(problems)
    assert wrong == {}
