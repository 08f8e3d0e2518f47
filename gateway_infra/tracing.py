"""Optional OpenTelemetry tracing: spans for requests and backend calls, off by default.

Without a configured exporter every span here only moves the W3C trace context along (a new span
id under the caller's trace id), so logs and outbound calls carry it all the same. With one
(``GATEWAY_OTEL_EXPORTER=otlp|console``; the OTLP endpoint and headers come from the standard
``OTEL_EXPORTER_OTLP_*`` variables) the spans are recorded by the OpenTelemetry SDK, under the
trace id of the incoming ``traceparent``. The SDK is imported only when an exporter is
configured; the OTLP exporter is the optional extra ``tracing``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from gateway_infra.correlation import (
    TraceContext,
    current_correlation_id,
    new_span_id,
    new_trace_id,
    trace_context_var,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

Exporter = Literal["otlp", "console"]
AttributeValue = str | int | float | bool

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def configure_tracing(
    exporter: Exporter | None,
    *,
    service_name: str = "retail-sync-gateway",
    span_exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Record spans through the named exporter (or the given one); None turns tracing off."""
    global _tracer, _provider
    shutdown_tracing()
    if exporter is None and span_exporter is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(
                "GATEWAY_OTEL_EXPORTER=otlp needs the tracing extra: "
                "pip install 'retail-sync-gateway[tracing]'"
            ) from exc

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider
    _tracer = provider.get_tracer("gateway")
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the configured exporter; spans are no longer recorded."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = None
    _provider = None


def tracing_enabled() -> bool:
    return _tracer is not None


class ActiveSpan:
    """The span of some work: its trace context, and attributes while it is recording."""

    def __init__(self, context: TraceContext, span: trace.Span | None) -> None:
        self.context = context
        self._span = span

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        if self._span is not None:
            self._span.update_name(name)

    def fail(self, description: str) -> None:
        if self._span is not None:
            self._span.set_status(Status(StatusCode.ERROR, description))


def _remote_parent(parent: TraceContext) -> Any:
    span_context = SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def span(
    name: str,
    *,
    kind: Literal["server", "client", "internal"] = "internal",
    parent: TraceContext | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> _Span:
    """Run the block as a span under parent (default: the work's current trace context; a new
    trace when there is none). The span's context is the current one inside the block."""
    return _Span(name, kind, parent, attributes)


class _Span:
    """The context manager `span` returns (a class, not a generator: every request opens one)."""

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_recording", "_token")

    def __init__(
        self,
        name: str,
        kind: Literal["server", "client", "internal"],
        parent: TraceContext | None,
        attributes: Mapping[str, AttributeValue] | None,
    ) -> None:
        self._name = name
        self._kind = kind
        self._parent = parent
        self._attributes = attributes
        self._token: Token[TraceContext | None] | None = None
        self._recording: contextlib.AbstractContextManager[trace.Span] | None = None

    def __enter__(self) -> ActiveSpan:
        parent = self._parent or trace_context_var.get()
        tracer = _tracer
        if tracer is None:
            context = TraceContext(
                parent.trace_id if parent else new_trace_id(),
                new_span_id(),
                parent.flags if parent else "01",
            )
            self._token = trace_context_var.set(context)
            return ActiveSpan(context, None)
        all_attributes: dict[str, AttributeValue] = dict(self._attributes or {})
        correlation_id = current_correlation_id()
        if correlation_id:
            all_attributes["gateway.correlation_id"] = correlation_id
        self._recording = tracer.start_as_current_span(
            self._name,
            context=_remote_parent(parent) if parent else None,
            kind=_SPAN_KINDS[self._kind],
            attributes=all_attributes,
        )
        otel_span = self._recording.__enter__()
        recorded = otel_span.get_span_context()
        context = TraceContext(
            format(recorded.trace_id, "032x"),
            format(recorded.span_id, "016x"),
            format(int(recorded.trace_flags), "02x"),
        )
        self._token = trace_context_var.set(context)
        return ActiveSpan(context, otel_span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._token is not None:
            trace_context_var.reset(self._token)
        if self._recording is None:
            return None
        return self._recording.__exit__(exc_type, exc, traceback)


_SPAN_KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "internal": SpanKind.INTERNAL,
}
