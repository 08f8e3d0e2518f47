"""The Tryton adapter when Tryton goes away and comes back: the breaker opens, calls fail fast
with 503 + Retry-After (also through the real system API route), and once Tryton is back and
the breaker's reset time has passed the same requests succeed without duplicates in Tryton.

Also measures calls/s and latency of two adapter calls (printed, never asserted).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from contracts import Customer, Money, OrderLine
from contracts.erp import SalesOrderRequest
from gateway import build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import Layer
from gateway_infra.clock import ManualClock
from gateway_infra.resilience import BreakerState, CircuitBreaker, GuardPolicy
from system_api.app import create_system_app
from system_api.backends.tryton import TrytonClient, TrytonConnection, TrytonErp, TrytonWms
from system_api.errors import BackendUnavailable
from tests.conftest import (
    BASE_URL,
    INTERNAL_SCOPES,
    make_settings,
    provisioned_database,
    register_and_authorize,
    start_gateway,
)
from tests.tryton.harness import TrytonRpc, TrytonServer

pytestmark = pytest.mark.tryton

RESET_AFTER = timedelta(seconds=30)
POLICY = GuardPolicy(
    timeout_seconds=10.0,
    attempts=2,
    backoff_base_seconds=0.01,
    backoff_max_seconds=0.05,
    max_concurrency=4,
    calls_per_second=1000.0,
)


def order(reference: str, sku: str = "MUG-RED-350", price: str = "12.90") -> SalesOrderRequest:
    return SalesOrderRequest(
        reference=reference,
        channel="webshop",
        currency="EUR",
        customer=Customer(name="Grace Hopper", email="grace@example.com"),
        lines=[
            OrderLine(
                line_id="1",
                sku=sku,
                quantity=1,
                unit_price=Money(amount=Decimal(price), currency="EUR"),
            )
        ],
    )


class Adapters:
    def __init__(self, server: TrytonServer, clock: ManualClock) -> None:
        self.breaker = CircuitBreaker("tryton", clock, failure_threshold=2, reset_after=RESET_AFTER)
        self.client = TrytonClient.connect(
            TrytonConnection(
                server.url, server.database, server.admin_login, server.admin_password
            ),
            self.breaker,
            POLICY,
        )
        self.erp = TrytonErp(self.client)
        self.wms = TrytonWms(self.client, self.erp, clock=clock)


@pytest.fixture
async def adapters(tryton_server: TrytonServer, clock: ManualClock) -> AsyncIterator[Adapters]:
    built = Adapters(tryton_server, clock)
    yield built
    await built.client.aclose()
    if not tryton_server.running:  # leave the module's server running for the next test
        tryton_server.start()


@pytest.fixture
async def system_api(
    adapters: Adapters, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The real system API app with the Tryton adapters as its ERP and WMS, and a caller
    holding a real token of the gateway's authorization server."""
    with provisioned_database("sqlite", tmp_path) as url:
        gateway = start_gateway(make_settings(url), clock)
        root = build_app(gateway, run_background=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=root), base_url=BASE_URL
        ) as http:
            _, headers = await register_and_authorize(
                gateway, http, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
            )
        system = create_system_app(
            settings=gateway.settings,
            auth=gateway.layer_auth(Layer.SYSTEM),
            erp=adapters.erp,
            wms=adapters.wms,
        )
        app = FastAPI()
        app.mount("/system", system)  # where the gateway mounts it: /system/erp/v1/...
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers
        ) as client:
            yield client
        await gateway.aclose()


def sales_with_reference(server: TrytonServer, reference: str) -> list[dict[str, object]]:
    with TrytonRpc(server.url, server.database) as rpc:
        rpc.login(server.admin_login, server.admin_password)
        return rpc.search_read("sale.sale", [("reference", "=", reference)], ["number", "state"])


async def test_a_stopped_tryton_opens_the_breaker_and_nothing_is_duplicated_after_it_returns(
    tryton_server: TrytonServer,
    adapters: Adapters,
    system_api: httpx.AsyncClient,
    clock: ManualClock,
) -> None:
    ok = await system_api.get("/system/erp/v1/products/MUG-RED-350")
    assert ok.status_code == 200, ok.text
    assert ok.json()["list_price"] == {"amount": "12.90", "currency": "EUR"}
    reference = f"ord_{uuid.uuid4().hex[:12]}"

    tryton_server.stop()
    # Connection refused: the breaker counts the failures and opens (threshold 2).
    with pytest.raises(BackendUnavailable):
        await adapters.erp.create_sales_order(order(reference))
    with pytest.raises(BackendUnavailable):
        await adapters.erp.get_product("MUG-RED-350")
    assert adapters.breaker.state is BreakerState.OPEN

    # Open: calls fail fast, without trying Tryton, with the breaker's Retry-After.
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable) as caught:
        await adapters.erp.create_sales_order(order(reference))
    assert "circuit open" in str(caught.value.detail)
    assert caught.value.retry_after_seconds == int(RESET_AFTER.total_seconds())
    fail_fast = time.perf_counter() - started
    refused = await system_api.get("/system/erp/v1/products/MUG-RED-350")
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == str(int(RESET_AFTER.total_seconds()))
    assert refused.json()["code"] == "backend-unavailable"
    posted = await system_api.post(
        "/system/erp/v1/sales-orders", json=order(reference).model_dump(mode="json")
    )
    assert posted.status_code == 503, posted.text

    # Back, but the breaker still waits for its reset time.
    tryton_server.start()
    with pytest.raises(BackendUnavailable):
        await adapters.erp.get_product("MUG-RED-350")
    clock.advance(RESET_AFTER)

    again = await system_api.post(
        "/system/erp/v1/sales-orders", json=order(reference).model_dump(mode="json")
    )
    assert again.status_code in (200, 201), again.text
    assert adapters.breaker.snapshot()["state"] == BreakerState.CLOSED.value
    once_more = await adapters.erp.create_sales_order(order(reference))
    assert once_more.sales_order is not None
    assert once_more.sales_order.sales_order_id == again.json()["sales_order"]["sales_order_id"]
    assert [s["state"] for s in sales_with_reference(tryton_server, reference)] == ["quotation"]
    print(f"\nopen breaker refused a call in {fail_fast * 1000:.2f} ms")


async def measure(
    label: str, calls: int, call: Callable[[int], Awaitable[object]]
) -> dict[str, float]:
    await call(-1)  # warm up (session, reference data)
    latencies = []
    started = time.perf_counter()
    for index in range(calls):
        before = time.perf_counter()
        await call(index)
        latencies.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    latencies.sort()
    figures = {
        "calls_per_second": calls / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000,
    }
    print(
        f"\n{label}: {calls} calls, {figures['calls_per_second']:.1f} calls/s, "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
    )
    return figures


async def test_adapter_throughput_and_latency_are_measured(adapters: Adapters) -> None:
    """Figures for the record (printed with -s); no assertion on time."""
    run = uuid.uuid4().hex[:8]

    async def get_product(_: int) -> object:
        return await adapters.erp.get_product("MUG-RED-350")

    async def create_sales_order(index: int) -> object:
        decision = await adapters.erp.create_sales_order(order(f"perf_{run}_{index}"))
        assert decision.accepted
        return decision

    products = await measure("get_product", 100, get_product)
    sales = await measure("create_sales_order", 30, create_sales_order)
    assert products["calls_per_second"] > 0 and sales["calls_per_second"] > 0
