"""Telemetry: one trace from HTTP ingress through the envelope to the worker; log fields."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.config import APP_ROOT, load_settings
from shared.envelope import Envelope
from shared.telemetry import (
    configure_telemetry,
    current_log_fields,
    current_traceparent,
    edge_span,
    exporter_kinds,
    inject_trace_headers,
    log_context,
    span,
    start_span_from_traceparent,
)

EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "off"}), span_exporters=[EXPORTER])
    EXPORTER.clear()
    return EXPORTER


def test_one_trace_spans_http_ingress_the_envelope_and_the_worker(spans: InMemorySpanExporter) -> None:
    # GIVEN an HTTP ingress span that enqueues an envelope stamped with the current traceparent
    with span("http ingress", kind=SpanKind.SERVER, route="hr/events"):
        envelope = Envelope(
            type="employee.hired", payload={"employeeId": "E1001"}, traceparent=current_traceparent()
        )
    # WHEN a worker receives the message text and continues from it
    received = Envelope.from_json(envelope.to_json())
    attributes = {"messaging.message.id": received.id}
    with start_span_from_traceparent("worker", received.traceparent, attributes), span("graph call"):
        pass
    # THEN all three spans share one trace, parented ingress -> worker -> graph call
    by_name = {s.name: s for s in spans.get_finished_spans()}
    ingress, worker, graph = by_name["http ingress"], by_name["worker"], by_name["graph call"]
    assert ingress.context is not None
    assert worker.context is not None
    assert graph.context is not None
    assert {ingress.context.trace_id, worker.context.trace_id, graph.context.trace_id} == {
        ingress.context.trace_id
    }
    assert worker.parent is not None
    assert worker.parent.span_id == ingress.context.span_id
    assert graph.parent is not None
    assert graph.parent.span_id == worker.context.span_id
    assert worker.kind is SpanKind.CONSUMER
    assert worker.attributes == {"messaging.message.id": received.id}


def test_without_a_traceparent_the_worker_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    with start_span_from_traceparent("worker", None), start_span_from_traceparent("worker2", "garbage"):
        pass
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["worker2", "worker"]
    assert all(s.parent is None for s in finished)


def test_outside_any_span_there_is_no_traceparent(spans: InMemorySpanExporter) -> None:
    assert current_traceparent() is None
    with span("x"):
        traceparent = current_traceparent()
    assert traceparent is not None
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)


def test_configuring_twice_keeps_one_provider_and_exports_once(spans: InMemorySpanExporter) -> None:
    provider = trace.get_tracer_provider()
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "console"}), span_exporters=[EXPORTER])
    with span("once"):
        pass
    assert trace.get_tracer_provider() is provider
    assert [s.name for s in spans.get_finished_spans()] == ["once"]


def test_exceptions_are_recorded_on_the_span(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="boom"), span("failing"):
        raise ValueError("boom")
    [failed] = spans.get_finished_spans()
    assert not failed.status.is_ok
    assert [e.name for e in failed.events] == ["exception"]


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        ({}, []),
        ({"WAVEGUARD_TELEMETRY": "console"}, ["console"]),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}, ["azure_monitor"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        (
            {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x", "WAVEGUARD_TELEMETRY": "off"},
            [],
        ),
    ],
)
def test_exporters_follow_the_settings(environ: dict[str, str], kinds: list[str]) -> None:
    assert exporter_kinds(load_settings(environ)) == kinds


def test_log_records_carry_bound_fields_and_trace_ids(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("waveguard.test")
    with caplog.at_level(logging.INFO, logger="waveguard.test"):
        with log_context(message_id="msg-1"), log_context(correlation_id="corr-9"), span("work"):
            assert current_log_fields() == {"message_id": "msg-1", "correlation_id": "corr-9"}
            logger.info("processing")
        logger.info("after")
    inside, after = caplog.records
    [work] = spans.get_finished_spans()
    assert work.context is not None
    assert inside.message_id == "msg-1"  # type: ignore[attr-defined]
    assert inside.correlation_id == "corr-9"  # type: ignore[attr-defined]
    assert inside.trace_id == f"{work.context.trace_id:032x}"  # type: ignore[attr-defined]
    assert not hasattr(after, "message_id")
    assert current_log_fields() == {}


CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_edge_span_continues_the_callers_traceparent(spans: InMemorySpanExporter) -> None:
    with edge_span("POST /api/hr/events", {"traceparent": CALLER}, {"http.route": "/api/hr/events"}):
        pass
    [edge] = spans.get_finished_spans()
    assert edge.kind is SpanKind.SERVER
    assert edge.context is not None
    assert edge.parent is not None
    assert f"{edge.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert f"{edge.parent.span_id:016x}" == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "headers", [{}, {"traceparent": "00-zz-00-01"}, {"traceparent": "00-" + "0" * 32 + "-1-01"}]
)
def test_without_a_valid_traceparent_the_edge_starts_a_trace(
    spans: InMemorySpanExporter, headers: dict[str, str]
) -> None:
    with edge_span("GET /api/health", headers):
        pass
    [edge] = spans.get_finished_spans()
    assert edge.kind is SpanKind.SERVER
    assert edge.parent is None


def test_a_caller_cannot_switch_recording_off_or_pass_its_tracestate_on(spans: InMemorySpanExporter) -> None:
    # GIVEN an anonymous caller whose traceparent says "not sampled" and who sends a tracestate
    headers = {"traceparent": CALLER[:-2] + "00", "tracestate": "evil=payload"}
    with edge_span("GET /api/health", headers) as edge:
        recording = edge.is_recording()
        outgoing: dict[str, str] = {}
        inject_trace_headers(outgoing)
    # THEN the trace is still recorded and continued, and no tracestate goes further
    assert recording
    assert [s.name for s in spans.get_finished_spans()] == ["GET /api/health"]
    assert outgoing["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "tracestate" not in outgoing


def test_under_the_functions_hosts_span_the_edge_is_its_child(spans: InMemorySpanExporter) -> None:
    # GIVEN the worker made the host's request span current (PYTHON_ENABLE_OPENTELEMETRY on Azure)
    other = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    with (
        start_span_from_traceparent("host request", CALLER, kind=SpanKind.SERVER),
        edge_span("POST /api/hr/events", other),
    ):
        pass
    edge, host = spans.get_finished_spans()
    # THEN the edge span is an INTERNAL child of the host's, not a second SERVER span
    assert edge.kind is SpanKind.INTERNAL
    assert edge.parent is not None
    assert host.context is not None
    assert edge.parent.span_id == host.context.span_id


DISTRO_PROBE = """
import json, sys
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from shared.config import load_telemetry_settings
from shared.telemetry import configure_telemetry, tracer
configure_telemetry(load_telemetry_settings())
provider = trace.get_tracer_provider()
kiota = trace.get_tracer("com.microsoft.com:microsoft-kiota-http-httpx").start_span("k")
exporters = [getattr(p, "span_exporter", None) for p in provider._active_span_processor._span_processors]
exporters = [e for e in exporters if e is not None]
print(json.dumps({
    "provider": type(provider).__module__,
    "kiota_recording": kiota.is_recording(),
    "waveguard_recording": tracer().start_span("w").is_recording(),
    "httpx_instrumented": HTTPXClientInstrumentor().is_instrumented_by_opentelemetry,
    "exporters": sorted(type(e).__name__ for e in exporters),
    "credentials": sorted(type(getattr(e, "_credential", None)).__name__ for e in exporters
                          if type(e).__name__ == "AzureMonitorTraceExporter"),
}))
"""
LOOPBACK_INGESTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/"
)


def _probe(extra: dict[str, str], script: str = DISTRO_PROBE) -> dict[str, object]:
    # In a process of its own: the distro installs the global tracer provider. Every endpoint is
    # loopback and statsbeat is off, so nothing leaves the machine.
    environ = {
        **os.environ,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "PYTHONPATH": str(APP_ROOT),
        "WAVEGUARD_WARM_START": "false",
        **extra,
    }
    for name in ("OTEL_TRACES_SAMPLER", "WEBSITE_INSTANCE_ID", "WAVEGUARD_ENV", "AZURE_CLIENT_ID"):
        if name not in extra:
            environ.pop(name, None)  # the defaults: every trace kept, a local process
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=APP_ROOT, env=environ
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_with_a_connection_string_the_azure_monitor_distro_exports_and_kiota_stays_folded() -> None:
    probe = _probe(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": LOOPBACK_INGESTION,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        }
    )
    assert probe == {
        "provider": "opentelemetry.sdk.trace",
        "kiota_recording": False,
        "waveguard_recording": True,
        "httpx_instrumented": False,
        "exporters": ["AzureMonitorTraceExporter", "OTLPSpanExporter"],
        "credentials": ["NoneType"],  # locally none is passed (the exporter's own fallbacks apply)
    }


def test_on_azure_the_exporter_authenticates_with_the_managed_identity() -> None:
    # GIVEN the app settings infra/modules/functionapp.bicep sets on a Function App
    probe = _probe(
        {
            "WEBSITE_INSTANCE_ID": "0123abcd",
            "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": LOOPBACK_INGESTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": (
                "ClientId=11111111-1111-1111-1111-111111111111;Authorization=AAD"
            ),
        }
    )
    # THEN spans go to Application Insights with an Entra token (local auth is off there)
    assert probe["exporters"] == ["AzureMonitorTraceExporter"]
    assert probe["credentials"] == ["ManagedIdentityCredential"]


IMPORT_PROBE = """
import json, function_app
from opentelemetry import trace
from shared.telemetry import tracer
print(json.dumps({"functions": len(function_app.app.get_functions()),
                  "recording": tracer().start_span("w").is_recording()}))
"""


@pytest.mark.parametrize("connection_string", ["InstrumentationKey=abc", "garbage", ";;;="])
def test_a_malformed_connection_string_never_stops_the_functions_loading(connection_string: str) -> None:
    probe = _probe({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string}, IMPORT_PROBE)
    assert probe["recording"] is True  # tracing goes on without the export (the error is logged)
    assert isinstance(probe["functions"], int)
    assert probe["functions"] > 10
