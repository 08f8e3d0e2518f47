"""The gateway with Tryton as its ERP and WMS: an order submitted to the process API is validated
by Tryton and recorded there; readiness shows the circuit breaker."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway import build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from tests.conftest import (
    BASE_URL,
    INTERNAL_SCOPES,
    make_settings,
    register_and_authorize,
    start_gateway,
)
from tests.tryton.harness import TrytonRpc, TrytonServer

pytestmark = pytest.mark.tryton


async def test_an_order_through_the_process_api_is_validated_and_recorded_by_tryton(
    tryton_server: TrytonServer, database_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        database_url,
        system_backend="tryton",
        tryton_url=tryton_server.url,
        tryton_database=tryton_server.database,
        tryton_password=tryton_server.admin_password,
    )
    gateway = start_gateway(settings, clock)
    await gateway.inventory.report_on_hand("MUG-RED-350", 50, clock.now())
    reference = f"W-{uuid.uuid4().hex[:8]}"
    try:
        transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            _, headers = await register_and_authorize(
                gateway, http, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
            )
            ready = await http.get("/readyz")
            created = await http.post(
                "/process/v1/orders",
                json={
                    "channel": "webshop",
                    "channel_order_id": reference,
                    "currency": "EUR",
                    "lines": [
                        {
                            "line_id": "1",
                            "sku": "MUG-RED-350",
                            "quantity": 2,
                            "unit_price": {"amount": "12.90", "currency": "EUR"},
                        }
                    ],
                },
                headers=headers,
            )
    finally:
        await gateway.aclose()

    assert ready.json()["checks"]["backends"]["erp"]["adapter"] == "tryton"
    assert ready.json()["checks"]["backends"]["circuit_breakers"]["tryton"]["state"] == "closed"
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    with TrytonRpc(tryton_server.url, tryton_server.database) as rpc:
        rpc.login("admin", tryton_server.admin_password)
        sales = rpc.search_read("sale.sale", [("reference", "=", order_id)], ["state"])
    assert [sale["state"] for sale in sales] == ["quotation"]
