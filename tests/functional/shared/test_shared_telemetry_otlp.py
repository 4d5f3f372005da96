"""The OTLP/HTTP exporter WaveGuard builds really delivers spans to a collector's /v1/traces."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from shared.telemetry import otlp_exporter

pytestmark = pytest.mark.functional


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.received.append((self.path, self.headers.get("Content-Type", ""), length))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_spans_reach_the_collector_under_v1_traces(collector: str) -> None:
    # GIVEN OTEL_EXPORTER_OTLP_ENDPOINT-style base URL (no path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otlp_exporter(collector)))
    # WHEN a span ends
    with provider.get_tracer("test").start_as_current_span("hr worker"):
        pass
    provider.shutdown()
    # THEN the collector received it as OTLP protobuf on the standard path
    [(path, content_type, length)] = _Collector.received
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert length > 0
