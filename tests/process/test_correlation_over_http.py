"""With the system API served over HTTP, one request's correlation id and W3C trace reach the
system API: its events carry the caller's correlation id and, with tracing on, its spans continue
the caller's trace under the process layer's client span."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from gateway import Gateway, build_app
from gateway_infra.clock import ManualClock
from gateway_infra.tables import outbox
from gateway_infra.tracing import configure_tracing, shutdown_tracing
from tests.conftest import UvicornThread, make_settings, start_gateway
from tests.factories import order_payload, seed_products
from tests.process.conftest import system_api_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway that calls the system API of another one, served by uvicorn, over HTTP."""
    system_side = start_gateway(make_settings(database_url), clock)
    server = UvicornThread(build_app(system_side, run_background=False)).start()
    built = start_gateway(
        make_settings(database_url, **system_api_settings(system_side, server.url)), clock
    )
    yield built
    await built.aclose()
    server.stop()
    await system_side.aclose()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing(None, span_exporter=exporter)
    try:
        yield exporter
    finally:
        shutdown_tracing()


async def test_the_system_api_continues_the_callers_correlation_and_trace(
    gateway: Gateway, client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    seed_products(gateway)

    response = await client.post(
        "/process/v1/orders",
        json=order_payload("TRACE-1"),
        headers={
            "X-Correlation-ID": "order-over-http",
            "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"] == "order-over-http"
    assert response.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    # The system side recorded the ERP's events under the caller's correlation id.
    system_events = await gateway.store.read(
        lambda conn: list(
            conn.execute(
                select(outbox.c.type, outbox.c.correlation_id).where(outbox.c.type.like("erp.%"))
            )
        )
    )
    assert system_events
    assert {row.correlation_id for row in system_events} == {"order-over-http"}
    # One trace: the process layer's request span under the caller's, its calls to the system
    # API as client spans, and the system API's request spans under those calls.
    # (The process layer's token for the system API is fetched for the first call: in its trace.)
    finished = spans.get_finished_spans()
    assert "POST /oauth/token" in {s.name for s in finished}
    assert {format(s.context.trace_id, "032x") for s in finished} == {TRACE_ID}
    by_id = {s.context.span_id: s for s in finished}
    process_request = next(
        s
        for s in finished
        if s.kind is SpanKind.SERVER
        and s.parent is not None
        and s.parent.span_id == int(CALLER_SPAN, 16)
    )
    calls = [s for s in finished if s.kind is SpanKind.CLIENT and s.name.startswith("system API")]
    system_requests = [
        s
        for s in finished
        if s.kind is SpanKind.SERVER
        and s.parent is not None
        and s.parent.span_id in by_id
        and by_id[s.parent.span_id].kind is SpanKind.CLIENT
    ]
    assert calls and system_requests
    assert response.headers["traceparent"].split("-")[2] == format(
        process_request.context.span_id, "016x"
    )
    assert {c.parent.span_id for c in calls if c.parent} == {process_request.context.span_id}
    assert {s.attributes["gateway.correlation_id"] for s in system_requests if s.attributes} == {
        "order-over-http"
    }
