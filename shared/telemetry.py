"""OpenTelemetry setup and the helpers that carry one trace from HTTP ingress through queues to workers.

``configure_telemetry(settings)`` installs an SDK tracer provider once per process (exporting
to Azure Monitor, OTLP/HTTP and/or the console as configured; with no exporter, spans still
get real ids so W3C ``traceparent`` propagation works). ``current_traceparent()`` is what the
queue sender stamps on envelopes; ``start_span_from_traceparent()`` continues that trace in
the worker. ``log_context(**fields)`` binds identifiers (message id, correlation id) to every
log record emitted inside it, together with the current trace and span ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.config.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "ExporterKind",
    "configure_telemetry",
    "current_log_fields",
    "current_traceparent",
    "exporter_kinds",
    "install_log_context",
    "log_context",
    "otlp_exporter",
    "span",
    "start_span_from_traceparent",
    "tracer",
]

ExporterKind = Literal["azure_monitor", "otlp", "console"]
TRACER_NAME: Final = "waveguard"

_lock = threading.Lock()
_configured_exporters: list[object] = []
_propagator = TraceContextTextMapPropagator()
_log_fields: ContextVar[Mapping[str, Any]] = ContextVar("waveguard_log_fields", default=MappingProxyType({}))
_factory_installed = False


def exporter_kinds(settings: Settings) -> list[ExporterKind]:
    """Which exporters the settings ask for (``off`` means none, whatever else is set)."""
    if settings.telemetry == "off":
        return []
    kinds: list[ExporterKind] = []
    if settings.applicationinsights_connection_string:
        kinds.append("azure_monitor")
    if settings.otlp_endpoint:
        kinds.append("otlp")
    if settings.telemetry == "console":
        kinds.append("console")
    return kinds


def configure_telemetry(
    settings: Settings, *, service_name: str = "waveguard", span_exporters: Sequence[SpanExporter] = ()
) -> None:
    """Install tracing once per process; later calls only add new ``span_exporters`` (tests).

    Safe to call from every entry point: the provider and the configured exporters are
    created on the first call only.
    """
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _lock:
        provider, created = _provider(service_name)
        if created:
            for kind in exporter_kinds(settings):
                provider.add_span_processor(BatchSpanProcessor(_build_exporter(kind, settings)))
        for exporter in span_exporters:
            if not any(exporter is known for known in _configured_exporters):
                # Synchronous export: a test sees its spans as soon as they end.
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                _configured_exporters.append(exporter)
    install_log_context()


def _provider(service_name: str) -> tuple[TracerProvider, bool]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, False  # installed by an earlier call (or by the host): reuse it
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    return provider, True


def _build_exporter(kind: ExporterKind, settings: Settings) -> SpanExporter:
    if kind == "azure_monitor":
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        from shared.config.identity import azure_credential

        # Our App Insights resource has local (key) auth disabled: ingestion needs an Entra token.
        return AzureMonitorTraceExporter(
            connection_string=settings.applicationinsights_connection_string,
            credential=azure_credential(settings) if settings.environment == "azure" else None,
        )
    if kind == "otlp":
        return otlp_exporter(str(settings.otlp_endpoint))
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def otlp_exporter(endpoint: str) -> SpanExporter:
    """An OTLP/HTTP span exporter for a collector base URL (``/v1/traces`` is appended as the spec says)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    url = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    return OTLPSpanExporter(endpoint=url, timeout=10)


def tracer() -> trace.Tracer:
    """WaveGuard's tracer (a no-op until telemetry is configured)."""
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None outside a recording trace."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def start_span_from_traceparent(
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
) -> Iterator[Span]:
    """A current span continuing the trace in ``traceparent`` (a new trace when None or invalid)."""
    parent = (
        _propagator.extract({"traceparent": traceparent}, context=Context()) if traceparent else Context()
    )
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=_attrs(attributes)
    ) as current:
        yield current


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """A child span of the current one; exceptions are recorded on it and re-raised."""
    with tracer().start_as_current_span(name, kind=kind, attributes=_attrs(attributes)) as current:
        yield current


def _attrs(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    # OpenTelemetry accepts str/bool/int/float (and sequences of them); drop Nones, stringify the rest.
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind identifiers to every log record emitted inside the block (nested blocks add fields).

    Only identifiers: never personal data, TAPs, tokens or secrets.
    """
    token = _log_fields.set({**_log_fields.get(), **fields})
    try:
        yield
    finally:
        _log_fields.reset(token)


def current_log_fields() -> dict[str, Any]:
    """The fields bound by the enclosing ``log_context`` blocks."""
    return dict(_log_fields.get())


def install_log_context() -> None:
    """Make every ``logging`` record carry the bound fields plus ``trace_id``/``span_id`` (idempotent)."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            for key, value in _log_fields.get().items():
                if not hasattr(record, key):
                    setattr(record, key, value)
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = f"{context.trace_id:032x}"
                record.span_id = f"{context.span_id:016x}"
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
