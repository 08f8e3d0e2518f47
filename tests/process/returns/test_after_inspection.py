"""The default policy: a return is refunded only after its goods were received and inspected."""

from __future__ import annotations

from decimal import Decimal

import httpx

from gateway import Gateway
from tests.process.fulfilment.support import payout, payout_line
from tests.process.returns.support import (
    RED,
    blue,
    create_return,
    credit_note_count,
    erp_credit_notes_of,
    events_of,
    inspection,
    receipt,
    red,
    shipped_order,
    statuses,
)


async def test_a_return_walks_from_request_to_closed_with_one_credit_note_after_inspection(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "RET-1", red(3), blue(1))

    created = await create_return(client, order_id, "RMA-1", ("1", RED, 2))
    return_id = created["return_id"]
    assert created["status"] == "authorized"
    assert created["lines"][0]["refund_timing"] == "after_inspection"
    assert created["lines"][0]["unit_price"] == {"amount": "12.90", "currency": "EUR"}
    assert created["value"] == {"amount": "25.80", "currency": "EUR"}

    transit = await client.post(f"/process/v1/returns/{return_id}/in-transit")
    assert transit.status_code == 200, transit.text
    received = await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))
    assert received.status_code == 200, received.text
    assert received.json()["receipts"] == [{"line_id": "1", "quantity_received": 2}]
    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    assert inspected.status_code == 200, inspected.text
    assert inspected.json()["status"] == "inspected"
    assert inspected.json()["refunds"] == []

    approved = await client.post(f"/process/v1/returns/{return_id}/approve-refund")
    assert approved.status_code == 200, approved.text
    refunded = approved.json()
    assert refunded["status"] == "refunded"
    [refund] = refunded["refunds"]
    assert refund["kind"] == "approved"
    assert refund["state"] == "posted"
    assert refund["amount"] == {"amount": "25.80", "currency": "EUR"}
    assert refund["credit_note_ids"] and refund["issued_at"]

    closed = await client.post(f"/process/v1/returns/{return_id}/close")
    assert closed.status_code == 200, closed.text
    assert statuses(closed.json()) == [
        "requested",
        "authorized",
        "in_transit",
        "received",
        "inspected",
        "refund_approved",
        "refunded",
        "closed",
    ]
    assert all(step["actor"] and step["at"] for step in closed.json()["history"])
    [(reference, total)] = await erp_credit_notes_of(gateway, return_id)
    assert reference.startswith(f"{return_id}-approved/INV-")  # one per refund and invoice
    assert total == Decimal("25.80")
    [event] = await events_of(gateway, "return.refunded")
    assert event["channel"] == "webshop"
    assert event["data"]["return_id"] == return_id
    assert await credit_note_count(gateway) == 1


async def test_settlement_reconciles_a_payout_that_deducted_the_refund_we_credited(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "RET-2", red(2))
    ret = await create_return(client, order_id, "RMA-2", ("1", RED, 1))
    return_id = ret["return_id"]
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 1)))
    await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 1)),
    )
    await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    imported = await client.post(
        "/process/v1/settlements",
        json=payout(
            "PO-RET-2", payout_line(channel_order_id="RET-2", gross="25.80", refunds="12.90")
        ),
    )

    assert imported.status_code == 201, imported.text
    [settled] = imported.json()["lines"]
    assert settled["outcome"] == "matched"
    assert settled["refunded"] == {"amount": "12.90", "currency": "EUR"}
