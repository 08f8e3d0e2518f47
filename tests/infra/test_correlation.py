"""X-Correlation-ID and W3C traceparent: accepted when valid, started otherwise, echoed on every
answer, and sent on with outbound calls (system API over HTTP, Tryton JSON-RPC)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway_infra.clock import ManualClock
from gateway_infra.correlation import (
    TraceContext,
    correlation_id_var,
    outbound_headers,
    parse_traceparent,
    trace_context_var,
)
from gateway_infra.resilience import CircuitBreaker
from gateway_infra.tracing import configure_tracing, shutdown_tracing, span
from system_api.backends.tryton.rpc import TrytonClient, TrytonConnection
from system_api.http_transport import SystemApiTransport

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_read_and_invalid_ones_are_not() -> None:
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-01") == TraceContext(TRACE_ID, SPAN_ID, "01")
    # A later version is read by its first four fields.
    assert parse_traceparent(f"01-{TRACE_ID}-{SPAN_ID}-00-more") == TraceContext(
        TRACE_ID, SPAN_ID, "00"
    )
    for invalid in (
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{'0' * 32}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
    ):
        assert parse_traceparent(invalid) is None, invalid


async def test_every_answer_carries_the_trace_of_the_caller_or_a_new_one(
    anonymous: httpx.AsyncClient,
) -> None:
    continued = await anonymous.get(
        "/healthz", headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
    )
    started = await anonymous.get("/healthz")
    invalid = await anonymous.get("/healthz", headers={"traceparent": f"00-{'0' * 32}-x-01"})
    problem = await anonymous.get(
        "/process/v1/orders/ord_x", headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
    )

    answered = parse_traceparent(continued.headers["traceparent"])
    assert answered is not None
    assert answered.trace_id == TRACE_ID
    assert answered.span_id != SPAN_ID  # the gateway's own span in the caller's trace
    for other in (started, invalid):
        fresh = parse_traceparent(other.headers["traceparent"])
        assert fresh is not None and fresh.trace_id != TRACE_ID
    assert problem.status_code == 401
    assert problem.headers["traceparent"].split("-")[1] == TRACE_ID
    assert problem.headers["x-correlation-id"] == problem.json()["correlation_id"]


async def test_a_system_api_call_sends_the_correlation_id_and_the_trace_on() -> None:
    seen: list[httpx.Headers] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://system")
    api = SystemApiTransport("http://system", client=client)
    token = correlation_id_var.set("req-system")
    try:
        with span("request", parent=TraceContext(TRACE_ID, SPAN_ID)) as request_span:
            await api.request("GET", "/erp/v1/products")
    finally:
        correlation_id_var.reset(token)
        await api.aclose()

    assert seen[0]["x-correlation-id"] == "req-system"
    sent = parse_traceparent(seen[0]["traceparent"])
    assert sent is not None
    assert sent.trace_id == TRACE_ID
    assert sent.span_id not in (SPAN_ID, request_span.context.span_id)  # the call's own span


async def test_tryton_json_rpc_calls_carry_the_correlation_id_and_the_trace(
    clock: ManualClock,
) -> None:
    seen: list[tuple[str, httpx.Headers]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        method = json.loads(request.content)["method"]
        seen.append((method, request.headers))
        results = {"common.db.login": [1, "session"], "model.res.user.get_preferences": {}}
        return httpx.Response(200, json={"id": 1, "result": results.get(method, [])})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    tryton = TrytonClient.connect(
        TrytonConnection(url="http://tryton:8000", database="db", username="u", password="p"),
        CircuitBreaker("tryton", clock, reset_after=timedelta(seconds=30)),
        http=http,
    )
    exporter = InMemorySpanExporter()
    configure_tracing(None, span_exporter=exporter)
    token = correlation_id_var.set("req-tryton")
    trace_token = trace_context_var.set(TraceContext(TRACE_ID, SPAN_ID))
    try:
        await tryton.search("product.product", [])
    finally:
        trace_context_var.reset(trace_token)
        correlation_id_var.reset(token)
        shutdown_tracing()
        await http.aclose()

    assert [method for method, _ in seen] == [
        "common.db.login",
        "model.res.user.get_preferences",
        "model.product.product.search",
    ]
    spans = {format(s.context.span_id, "016x"): s for s in exporter.get_finished_spans()}
    assert [s.name for s in spans.values()] == [
        "tryton common.db.login",
        "tryton model.res.user.get_preferences",
        "tryton model.product.product.search",
    ]
    for _, headers in seen:
        assert headers["x-correlation-id"] == "req-tryton"
        sent = parse_traceparent(headers["traceparent"])
        assert sent is not None and sent.trace_id == TRACE_ID
        call = spans[sent.span_id]  # the callee's parent is the call's own client span
        assert call.kind is SpanKind.CLIENT
        assert call.parent is not None and format(call.parent.span_id, "016x") == SPAN_ID


def test_outbound_headers_are_empty_outside_any_work() -> None:
    assert outbound_headers() == {}
