"""The correlation id and W3C trace context of the work in progress, carried by context variables.

Set at the edge for each request (or by a background job) and read by logs, events and outbound
calls. Context variables follow the work into worker threads, so units of work see them too.

The correlation id (X-Correlation-ID) names everything one request caused; the trace context
(`traceparent`, https://www.w3.org/TR/trace-context/) names the trace and the span of the work in
progress, so outbound calls continue the caller's trace.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

CORRELATION_HEADER = "X-Correlation-ID"
TRACEPARENT_HEADER = "traceparent"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)


@dataclass(frozen=True)
class TraceContext:
    """The trace and the span of the work in progress (lowercase hex, as on the wire)."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace (for an outbound call made without a tracer)."""
        return TraceContext(self.trace_id, new_span_id(), self.flags)


trace_context_var: ContextVar[TraceContext | None] = ContextVar("trace_context", default=None)


def new_correlation_id() -> str:
    """32 random hex characters (as uuid4().hex gave, without building a UUID per request)."""
    return os.urandom(16).hex()


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def accept_correlation_id(candidate: str | None) -> str:
    """Keep a caller's id when it is well formed; otherwise make a new one."""
    if candidate and _VALID.match(candidate):
        return candidate
    return new_correlation_id()


def parse_traceparent(value: str | None) -> TraceContext | None:
    """The caller's trace context when the header is valid W3C trace context, else None.

    Version ff, all-zero ids and, for version 00, anything after the flags are invalid; a later
    version is read by its first four fields, as the recommendation asks."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id = match["version"], match["trace_id"], match["span_id"]
    if version == "ff" or (version == "00" and match["rest"]):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, match["flags"])


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


def current_trace() -> TraceContext | None:
    return trace_context_var.get()


def outbound_headers() -> dict[str, str]:
    """Headers that carry the work's correlation id and trace context to a called service."""
    headers: dict[str, str] = {}
    correlation_id = correlation_id_var.get()
    if correlation_id:
        headers[CORRELATION_HEADER] = correlation_id
    trace = trace_context_var.get()
    if trace is not None:
        headers[TRACEPARENT_HEADER] = trace.traceparent
    return headers
