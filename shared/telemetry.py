"""OpenTelemetry setup and the helpers that carry one trace from HTTP ingress through queues to Graph.

``configure_telemetry(settings)`` installs tracing once per process: with an Application Insights
connection string through the Azure Monitor OpenTelemetry distro (plus OTLP/HTTP and/or the
console when configured), otherwise an SDK tracer provider with those exporters (with no
exporter, spans still get real ids so W3C ``traceparent`` propagation works). Kiota's internal
spans (about eleven per Graph call) are folded away: ``shared.graph.tracing`` records one client
span per Graph call instead.

``edge_span()`` opens the span of an HTTP trigger, continuing the caller's ``traceparent``;
``current_traceparent()`` is what the queue sender stamps on envelopes;
``start_span_from_traceparent()`` continues that trace in the worker; ``inject_trace_headers()``
puts it on outgoing requests. ``log_context(**fields)`` binds identifiers (message id,
correlation id) to every log record emitted inside it, together with the current trace and span
ids.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
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
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "ExporterKind",
    "configure_telemetry",
    "current_log_fields",
    "current_traceparent",
    "edge_span",
    "exporter_kinds",
    "folded_scope",
    "inject_trace_headers",
    "install_log_context",
    "log_context",
    "otlp_exporter",
    "span",
    "start_span_from_traceparent",
    "tracer",
]

ExporterKind = Literal["azure_monitor", "otlp", "console"]
TRACER_NAME: Final = "waveguard"
# Instrumentation scopes whose spans are folded into their parent (not recorded): Kiota, the
# HTTP core of msgraph-sdk, opens about eleven spans per Graph call.
FOLDED_SCOPE_MARKERS: Final = ("kiota",)
# Instrumentations of the distro left off: httpx would duplicate shared.graph.tracing's span per
# Graph call; requests/urllib3 would duplicate azure-core's span per storage call; the web
# frameworks and psycopg2 are not used.
_DISTRO_INSTRUMENTATIONS_OFF: Final = (
    "httpx",
    "requests",
    "urllib",
    "urllib3",
    "django",
    "fastapi",
    "flask",
    "psycopg2",
)

log = logging.getLogger(__name__)

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
    created on the first call only. A provider installed before (by the Functions worker, say)
    is reused as it is.
    """
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with _lock:
        provider = _installed_provider()
        if provider is None:
            provider = _install_provider(settings, service_name)
        fold_library_spans(provider)
        for exporter in span_exporters:
            if not any(exporter is known for known in _configured_exporters):
                # Synchronous export: a test sees its spans as soon as they end.
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                _configured_exporters.append(exporter)
    install_log_context()


def _installed_provider() -> TracerProvider | None:
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    return current if isinstance(current, TracerProvider) else None


def _install_provider(settings: Settings, service_name: str) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    kinds = exporter_kinds(settings)
    resource = Resource.create({"service.name": service_name})
    processors: list[SpanProcessor] = [
        BatchSpanProcessor(_build_exporter(kind, settings)) for kind in kinds if kind != "azure_monitor"
    ]
    if "azure_monitor" in kinds:
        try:
            _configure_azure_monitor(settings, resource, processors)
        except Exception as exc:  # a bad connection string must never stop the functions loading
            log.error(
                "Application Insights export is off: the Azure Monitor distro refused its settings "
                "(%s: %s); check APPLICATIONINSIGHTS_CONNECTION_STRING",
                type(exc).__name__,
                exc,
            )
        installed = _installed_provider()
        if installed is not None:
            return installed
    # The caller's sampled flag never turns recording off: an anonymous request ending in -00
    # would otherwise silence its own trace and the queue work it causes.
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
    )
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def _configure_azure_monitor(settings: Settings, resource: Resource, processors: list[SpanProcessor]) -> None:
    """The Azure Monitor OpenTelemetry distro: traces (and metrics) to Application Insights.

    Logs are left to the Functions host, which already forwards the worker's log records
    (exporting them here too would show each twice).
    """
    from azure.monitor.opentelemetry import configure_azure_monitor

    from shared.config.identity import azure_credential

    # Every trace kept unless the operator picks a sampler with the standard OTEL_TRACES_SAMPLER
    # (the distro's own default samples 5 traces per second: a burst of hires would lose most).
    sampling: dict[str, Any] = {} if os.environ.get("OTEL_TRACES_SAMPLER") else {"sampling_ratio": 1.0}
    # Our App Insights resource has local (key) auth disabled: on Azure ingestion needs an Entra
    # token. Elsewhere no credential is passed at all (passing None would also switch off the
    # exporter's own APPLICATIONINSIGHTS_AUTHENTICATION_STRING fallback).
    if settings.environment == "azure":
        sampling["credential"] = azure_credential(settings)
    configure_azure_monitor(
        connection_string=settings.applicationinsights_connection_string,
        resource=resource,
        span_processors=processors,
        disable_logging=True,
        instrumentation_options={name: {"enabled": False} for name in _DISTRO_INSTRUMENTATIONS_OFF},
        **sampling,
    )


def folded_scope(name: str) -> bool:
    """Whether spans of this instrumentation scope are folded into their parent."""
    lowered = name.lower()
    return any(marker in lowered for marker in FOLDED_SCOPE_MARKERS)


def fold_library_spans(provider: TracerProvider) -> bool:
    """Turn off the tracers of folded scopes: their spans become non-recording and pass their
    parent's context through, so what they call still joins the caller's trace.

    Uses the SDK's tracer configurator (the specification's per-scope ``enabled`` switch, still
    marked experimental in the Python SDK). Returns False, with a warning, where the SDK lacks it.
    """
    try:
        from opentelemetry.sdk.trace import _TracerConfig
    except ImportError:  # pragma: no cover - guarded by the pinned SDK range
        log.warning("this OpenTelemetry SDK cannot switch tracers off; Kiota's spans are kept")
        return False
    set_configurator = getattr(provider, "_set_tracer_configurator", None)
    if set_configurator is None:  # pragma: no cover - guarded by the pinned SDK range
        log.warning("this OpenTelemetry SDK cannot switch tracers off; Kiota's spans are kept")
        return False
    enabled, folded = _TracerConfig(is_enabled=True), _TracerConfig(is_enabled=False)
    set_configurator(tracer_configurator=lambda scope: folded if folded_scope(scope.name) else enabled)
    return True


def _build_exporter(kind: ExporterKind, settings: Settings) -> SpanExporter:
    if kind == "otlp":
        return otlp_exporter(str(settings.otlp_endpoint))
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"{kind} is configured through the Azure Monitor distro, not as an exporter")


def otlp_exporter(endpoint: str) -> SpanExporter:
    """An OTLP/HTTP span exporter for a collector base URL (``/v1/traces`` is appended as the spec says)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    url = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    return OTLPSpanExporter(endpoint=url, timeout=10)


_tracer: tuple[object, trace.Tracer] | None = None  # (the provider it came from, the tracer)


def tracer() -> trace.Tracer:
    """WaveGuard's tracer (a no-op until telemetry is configured): made once per tracer provider,
    not per span (the SDK builds a new tracer and its scope's configuration on every request)."""
    global _tracer
    provider = trace.get_tracer_provider()
    cached = _tracer
    if cached is not None and cached[0] is provider:
        return cached[1]
    made = provider.get_tracer(TRACER_NAME)
    _tracer = (provider, made)
    return made


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


def inject_trace_headers(headers: MutableMapping[str, str]) -> None:
    """Put the current trace's ``traceparent`` (and ``tracestate``) on outgoing request headers."""
    _propagator.inject(headers)


@contextmanager
def edge_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """The span of an HTTP trigger, current for the invocation.

    On Azure (``PYTHON_ENABLE_OPENTELEMETRY``) the Functions host has already continued the
    caller's ``traceparent`` in its own request span and the worker made it current: this span
    is an INTERNAL child of it. Elsewhere (the local host, tests) it is the SERVER span,
    continuing the request's ``traceparent`` header (a new trace when absent or malformed).
    ``headers`` must have lower-case names.
    """
    if trace.get_current_span().get_span_context().is_valid:
        with span(name, kind=SpanKind.INTERNAL, **(attributes or {})) as current:
            yield current
        return
    # Only the caller's trace id and span id are continued: its tracestate (vendor data anyone
    # may send to a public endpoint) is not passed on to Graph.
    carrier = {"traceparent": headers["traceparent"]} if "traceparent" in headers else {}
    parent = _propagator.extract(carrier, context=Context()) if carrier else Context()
    with tracer().start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=_attrs(attributes)
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
