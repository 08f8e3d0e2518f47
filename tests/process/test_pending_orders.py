"""Pending channel orders (e.g. Amazon Pending): stock held with an expiry, validated only once the
channel confirms them, cancelled when it never does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from contracts import OrderStatus, OrderSubmission
from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import order_payload, seed_products
from tests.process.channels.builders import profile

SKU = "MUG-RED-350"


def pending(channel_order_id: str, **overrides: Any) -> dict[str, Any]:
    return {**order_payload(channel_order_id, **overrides), "pending": True}


async def reserved_units(gateway: Gateway) -> int:
    return (await gateway.inventory.position(SKU)).reserved


async def status_of(gateway: Gateway, order_id: str) -> str:
    """Read through the service: after the clock jumps, the client's token has expired."""
    return (await gateway.orders.require(order_id)).status.value


async def run_all_due(gateway: Gateway) -> None:
    while await gateway.scheduler.run_due():
        pass


async def test_a_pending_order_holds_its_stock_until_the_expiry_without_being_validated(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await gateway.channels.put(
        profile("webshop", pending_reservation_expiry=timedelta(days=2)),
        actor="test",
        expected_version=None,
    )
    seed_products(gateway)

    response = await client.post("/process/v1/orders", json=pending("PEND-1"))

    assert response.status_code == 202, response.text
    order = response.json()
    assert order["status"] == "reserved"
    assert order["pending_expires_at"] == (clock.now() + timedelta(days=2)).isoformat().replace(
        "+00:00", "Z"
    )
    assert await reserved_units(gateway) == 1
    assert await gateway.erp.get_sales_order(order["order_id"]) is None
    clock.advance(timedelta(hours=1))
    await run_all_due(gateway)
    assert await status_of(gateway, order["order_id"]) == "reserved"


async def test_a_confirmed_pending_order_is_validated_and_keeps_its_stock_past_the_expiry(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    first = (await client.post("/process/v1/orders", json=pending("PEND-2"))).json()

    confirmed = await client.post("/process/v1/orders", json=order_payload("PEND-2"))

    assert confirmed.status_code == 200, confirmed.text
    order = confirmed.json()
    assert order["order_id"] == first["order_id"]
    assert order["status"] == "accepted"
    assert order["pending_expires_at"] is None
    clock.advance(timedelta(days=30))
    await run_all_due(gateway)
    assert await status_of(gateway, order["order_id"]) == "accepted"
    assert await reserved_units(gateway) == 1


async def test_a_pending_order_never_confirmed_is_cancelled_and_its_stock_given_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await gateway.channels.put(
        profile("webshop", pending_reservation_expiry=timedelta(hours=6)),
        actor="test",
        expected_version=None,
    )
    seed_products(gateway)
    order = (await client.post("/process/v1/orders", json=pending("PEND-3"))).json()

    clock.advance(timedelta(hours=5, minutes=59))
    await run_all_due(gateway)
    assert await reserved_units(gateway) == 1
    clock.advance(timedelta(minutes=1))
    await run_all_due(gateway)

    cancelled = await gateway.orders.require(order["order_id"])
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.history[-1].reason == "the channel never confirmed the pending order"
    assert await reserved_units(gateway) == 0
    # Confirming it now is too late: the order stays cancelled.
    late = await gateway.orders.submit(
        OrderSubmission.model_validate(order_payload("PEND-3")), actor="test"
    )
    assert late.order.status is OrderStatus.CANCELLED


async def test_a_pending_order_submitted_again_as_pending_changes_nothing(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    first = (await client.post("/process/v1/orders", json=pending("PEND-4"))).json()

    again = await client.post("/process/v1/orders", json=pending("PEND-4"))

    assert again.status_code == 200
    assert again.json() == (await client.get(f"/process/v1/orders/{first['order_id']}")).json()
    assert await reserved_units(gateway) == 1


async def test_where_pending_orders_hold_no_stock_they_reserve_once_confirmed(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await gateway.channels.put(
        profile("webshop", reserve_pending_orders=False), actor="test", expected_version=None
    )
    seed_products(gateway, on_hand=1)

    waiting = await client.post("/process/v1/orders", json=pending("PEND-5"))
    assert waiting.status_code == 202
    assert waiting.json()["status"] == "received"
    assert await reserved_units(gateway) == 0
    confirmed = await client.post("/process/v1/orders", json=order_payload("PEND-5"))

    assert confirmed.json()["status"] == "accepted"
    assert [h["to_status"] for h in confirmed.json()["history"]] == [
        "received",
        "reserved",
        "validated",
        "accepted",
    ]
    assert await reserved_units(gateway) == 1


async def test_a_pending_order_confirmed_after_its_stock_sold_out_is_rejected(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await gateway.channels.put(
        profile("webshop", reserve_pending_orders=False), actor="test", expected_version=None
    )
    seed_products(gateway, on_hand=1)
    waiting = (await client.post("/process/v1/orders", json=pending("PEND-6"))).json()
    sold = await client.post("/process/v1/orders", json=order_payload("OTHER-6"))
    assert sold.status_code == 201

    confirmed = await client.post("/process/v1/orders", json=order_payload("PEND-6"))

    order = confirmed.json()
    assert order["order_id"] == waiting["order_id"]
    assert order["status"] == "rejected"
    assert order["rejections"][0]["reason"] == "insufficient_stock"
