"""An order from acceptance to settlement through the process API."""

from __future__ import annotations

import httpx

from gateway import Gateway
from tests.process.fulfilment.support import (
    accepted_order,
    erp_invoice_count,
    events_of,
    history,
    package,
    payout,
    payout_line,
    shipment,
    two_lines,
)


async def test_an_order_walks_from_accepted_through_shipments_and_invoices_to_settled(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await accepted_order(client, "WALK-1", *two_lines())

    released = await client.post(f"/process/v1/orders/{order_id}/release")
    assert released.status_code == 200, released.text
    assert released.json()["fulfilment_id"]
    assert released.json()["order"]["status"] == "released"

    first = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", "MUG-RED-350", 2))),
    )
    assert first.status_code == 201, first.text
    assert first.json()["order_status"] == "partially_shipped"
    assert await gateway.scheduler.run_due() == 1  # invoices what shipped
    second = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(
            order_id,
            package("PKG-2", ("1", "MUG-RED-350", 1), ("2", "MUG-BLUE-350", 1)),
        ),
    )
    assert second.status_code == 201, second.text
    assert second.json()["order_status"] == "shipped"
    assert await gateway.scheduler.run_due() == 1  # invoices the rest

    invoiced = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert invoiced["status"] == "invoiced"
    assert await erp_invoice_count(gateway, order_id) == 2

    imported = await client.post(
        "/process/v1/settlements",
        json=payout("PO-WALK", payout_line(channel_order_id="WALK-1", gross="48.20", fees="4.82")),
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["lines"][0]["outcome"] == "matched"

    settled = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert settled["status"] == "settled"
    assert history(settled) == [
        "received",
        "reserved",
        "validated",
        "accepted",
        "released",
        "partially_shipped",
        "shipped",
        "invoiced",
        "settled",
    ]
    assert all(step["actor"] and step["at"] for step in settled["history"])
    types = [
        t
        for t in ("order.released", "shipment.recorded", "order.shipped", "invoice.posted")
        for _ in await events_of(gateway, t)
    ]
    assert types.count("shipment.recorded") == 2
    assert types.count("invoice.posted") == 2
    assert "order.released" in types
    assert "order.shipped" in types
    assert [e["data"]["order_id"] for e in await events_of(gateway, "order.settled")] == [order_id]


async def test_shipments_are_read_back_per_shipment_with_their_packages(
    client: httpx.AsyncClient,
) -> None:
    order_id = await accepted_order(client, "WALK-2", *two_lines())
    await client.post(f"/process/v1/orders/{order_id}/release")
    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(
            order_id,
            package("PKG-A", ("1", "MUG-RED-350", 3)),
            package("PKG-B", ("2", "MUG-BLUE-350", 1)),
        ),
    )

    found = await client.get(f"/process/v1/orders/{order_id}/shipments")

    assert found.status_code == 200
    body = found.json()
    assert body["shipped"] == {"1": 3, "2": 1}
    assert body["pending_packages"] == []
    [recorded] = body["shipments"]
    assert recorded["order_id"] == order_id
    assert recorded["warehouse"] == "WH"
    assert [p["package_reference"] for p in recorded["packages"]] == ["PKG-A", "PKG-B"]
    assert recorded["packages"][0]["tracking_number"] == "TRK-PKG-A"
