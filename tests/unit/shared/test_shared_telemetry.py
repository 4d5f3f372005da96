"""Telemetry: one trace from HTTP ingress through the envelope to the worker; log fields."""

from __future__ import annotations

import logging
import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.config import load_settings
from shared.envelope import Envelope
from shared.telemetry import (
    configure_telemetry,
    current_log_fields,
    current_traceparent,
    exporter_kinds,
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
