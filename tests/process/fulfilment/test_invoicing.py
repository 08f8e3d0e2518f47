"""Invoices for shipped units: posted once per reference, automatically after a shipment and on
request, retried while the ERP is down."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.process.fulfilment.support import (
    Outage,
    accepted_order,
    erp_invoice_count,
    package,
    released_order,
    shipment,
    two_lines,
)

RED = "MUG-RED-350"
BLUE = "MUG-BLUE-350"


async def _ship(client: httpx.AsyncClient, order_id: str, *packages: dict[str, object]) -> None:
    shipped = await client.post(
        f"/process/v1/orders/{order_id}/shipments", json=shipment(order_id, *packages)
    )
    assert shipped.status_code == 201, shipped.text


async def test_shipped_units_are_invoiced_once_even_when_asked_twice(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "INV-1", *two_lines())
    await _ship(client, order_id, package("PKG-1", ("1", RED, 2)))

    first = await client.post(f"/process/v1/orders/{order_id}/invoice")
    second = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert await gateway.scheduler.run_due() == 0  # nothing shipped is left to invoice

    assert first.status_code == second.status_code == 200, first.text
    [invoice] = second.json()["invoices"]
    assert invoice["reference"] == f"{order_id}/invoice/1"
    assert invoice["total"] == {"amount": "25.80", "currency": "EUR"}
    assert [(line["line_id"], line["quantity"]) for line in invoice["lines"]] == [("1", 2)]
    assert second.json()["invoiced"] == {"1": 2}
    assert second.json()["order_status"] == "partially_shipped"
    assert await erp_invoice_count(gateway, order_id) == 1


async def test_a_fully_shipped_order_becomes_invoiced_by_the_timer_after_shipment(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "INV-2", *two_lines())
    await _ship(client, order_id, package("PKG-1", ("1", RED, 3)), package("PKG-2", ("2", BLUE, 1)))
    assert (await client.get(f"/process/v1/orders/{order_id}")).json()["status"] == "shipped"

    assert await gateway.scheduler.run_due() == 1

    order = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert order["status"] == "invoiced"
    assert order["history"][-1]["actor"] == "erp"
    again = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert again.status_code == 200
    assert len(again.json()["invoices"]) == 1
    assert await erp_invoice_count(gateway, order_id) == 1


async def test_an_invoice_retried_after_a_lost_answer_is_not_posted_twice(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, erp_outage: Outage
) -> None:
    order_id = await released_order(client, "INV-3", *two_lines())
    await _ship(client, order_id, package("PKG-1", ("1", RED, 3), ("2", BLUE, 1)))
    erp_outage.lose_next_answer = True

    lost = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert lost.status_code == 202
    assert lost.json()["invoices"] == []
    clock.advance(timedelta(minutes=1))
    await gateway.scheduler.run_due()

    order = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert order["status"] == "invoiced"
    assert await erp_invoice_count(gateway, order_id) == 1
    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0


async def test_invoicing_waits_while_the_erp_is_down_and_the_timer_posts_it(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, erp_outage: Outage
) -> None:
    order_id = await released_order(client, "INV-4")
    erp_outage.down = True
    await _ship(client, order_id, package("PKG-1", ("1", RED, 1)))

    assert await gateway.scheduler.run_due() == 1  # ERP down: retried later
    waiting = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert waiting.status_code == 202
    assert waiting.json()["waiting_for_erp"] is True
    assert (await client.get(f"/process/v1/orders/{order_id}")).json()["status"] == "shipped"

    erp_outage.down = False
    clock.advance(timedelta(minutes=15))
    assert await gateway.scheduler.run_due() == 1
    assert (await client.get(f"/process/v1/orders/{order_id}")).json()["status"] == "invoiced"
    assert await erp_invoice_count(gateway, order_id) == 1


async def test_an_order_that_shipped_nothing_has_nothing_to_invoice(
    client: httpx.AsyncClient,
) -> None:
    order_id = await accepted_order(client, "INV-5")

    refused = await client.post(f"/process/v1/orders/{order_id}/invoice")
    missing = await client.post("/process/v1/orders/ord_nope/invoice")

    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/nothing-to-invoice"
    assert missing.status_code == 404
