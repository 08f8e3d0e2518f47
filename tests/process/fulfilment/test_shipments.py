"""Shipments per package: idempotent by package reference, never beyond what was ordered,
consuming the reservation, confirmed with the WMS."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from contracts.wms import AdjustmentReason, StockAdjustmentRequest
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from tests.process.fulfilment.support import (
    WAREHOUSE,
    Outage,
    accepted_order,
    events_of,
    package,
    released_order,
    shipment,
    two_lines,
)

RED = "MUG-RED-350"
BLUE = "MUG-BLUE-350"


async def test_a_package_sent_again_changes_nothing(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-1", *two_lines())
    body = shipment(order_id, package("PKG-1", ("1", RED, 2)))
    first = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)
    position = await gateway.inventory.position(RED)

    again = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await gateway.inventory.position(RED) == position
    assert len(await events_of(gateway, "shipment.recorded")) == 1
    fulfilment = await gateway.embedded_wms.get_fulfilment(
        (await client.post(f"/process/v1/orders/{order_id}/release")).json()["fulfilment_id"]
    )
    assert fulfilment is not None
    assert [line.shipped_quantity for line in fulfilment.lines] == [2, 0]


async def test_a_package_sent_again_with_other_contents_is_refused(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-2", *two_lines())
    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 2))),
    )
    position = await gateway.inventory.position(RED)

    changed = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 3))),
    )

    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    assert changed.json()["type"] == "/problems/package-conflict"
    assert changed.json()["package_reference"] == "PKG-1"
    assert await gateway.inventory.position(RED) == position
    shipped = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()["shipped"]
    assert shipped == {"1": 2}


async def test_units_beyond_the_ordered_quantity_are_refused_and_nothing_is_recorded(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-3", *two_lines())
    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 2))),
    )
    position = await gateway.inventory.position(RED)

    over = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-2", ("2", BLUE, 1)), package("PKG-3", ("1", RED, 2))),
    )

    assert over.status_code == 409
    assert over.json()["type"] == "/problems/over-shipment"
    assert over.json()["lines"] == [{"line_id": "1", "ordered": 3, "shipped": 2, "reported": 2}]
    assert await gateway.inventory.position(RED) == position
    found = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()
    assert found["shipped"] == {"1": 2}
    assert found["order_status"] == "partially_shipped"


async def test_a_new_package_for_a_fully_shipped_order_is_an_over_shipment(
    client: httpx.AsyncClient,
) -> None:
    order_id = await released_order(client, "SHIP-4")
    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 1))),
    )

    more = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-2", ("1", RED, 1))),
    )

    assert more.status_code == 409
    assert more.json()["type"] == "/problems/over-shipment"


async def test_a_shipment_consumes_the_reservation_and_reduces_on_hand(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-5", *two_lines())
    held = await gateway.inventory.position(RED)
    assert (held.on_hand, held.reserved) == (100, 3)

    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 2))),
    )

    after = await gateway.inventory.position(RED)
    assert (after.on_hand, after.reserved) == (98, 1)
    [level] = await gateway.embedded_wms.stock_levels(sku=RED, warehouse=WAREHOUSE)
    assert level.on_hand == 98
    published = [
        e["data"]
        for e in await events_of(gateway, "availability.changed")
        if e["data"]["sku"] == RED
    ]
    assert published  # availability republished after the shipment


async def test_shipped_packages_are_published_as_events(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-6")

    await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 1), tracking="1Z999")),
    )

    [recorded] = await events_of(gateway, "shipment.recorded")
    assert recorded["subject"] == f"order/{order_id}"
    assert recorded["channel"] == "webshop"
    assert recorded["data"]["packages"] == [
        {
            "package_reference": "PKG-1",
            "carrier": "dhl",
            "tracking_number": "1Z999",
            "lines": [{"line_id": "1", "sku": RED, "quantity": 1}],
        }
    ]
    [shipped] = await events_of(gateway, "order.shipped")
    assert shipped["data"]["channel_order_id"] == "SHIP-6"
    assert [s.order_id for s in await gateway.fulfilment.list_shipments(order_id)] == [order_id]


async def test_an_order_not_released_does_not_ship(client: httpx.AsyncClient) -> None:
    order_id = await accepted_order(client, "SHIP-7")

    refused = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 1))),
    )

    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/order-not-shippable"
    assert refused.json()["order_status"] == "accepted"


async def test_a_package_naming_another_line_or_sku_is_invalid(client: httpx.AsyncClient) -> None:
    order_id = await released_order(client, "SHIP-8")

    unknown_line = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("9", RED, 1))),
    )
    other_sku = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", BLUE, 1))),
    )
    other_order = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment("ord_other", package("PKG-1", ("1", RED, 1))),
    )

    assert unknown_line.status_code == other_sku.status_code == other_order.status_code == 422
    assert unknown_line.json()["type"] == "/problems/shipment-invalid"
    assert other_order.json()["errors"][0]["pointer"] == "#/order_id"


async def test_a_shipment_for_an_unknown_order_is_not_found(client: httpx.AsyncClient) -> None:
    missing = await client.post(
        "/process/v1/orders/ord_nope/shipments",
        json=shipment("ord_nope", package("PKG-1", ("1", RED, 1))),
    )
    listed = await client.get("/process/v1/orders/ord_nope/shipments")

    assert missing.status_code == listed.status_code == 404


async def test_packages_wait_while_the_wms_is_down_and_the_timer_records_them(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await released_order(client, "SHIP-9", *two_lines())
    wms_outage.down = True
    body = shipment(order_id, package("PKG-1", ("1", RED, 3)))

    deferred = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)
    over = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-2", ("1", RED, 1))),
    )

    assert deferred.status_code == 202, deferred.text
    assert deferred.json()["shipments"] == []
    assert [p["package_reference"] for p in deferred.json()["pending_packages"]] == ["PKG-1"]
    assert over.status_code == 409  # a pending package counts against the ordered quantity
    assert (await gateway.inventory.position(RED)).reserved == 3

    wms_outage.down = False
    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1
    found = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()
    assert found["pending_packages"] == []
    assert found["shipped"] == {"1": 3}
    assert found["order_status"] == "partially_shipped"
    assert (await gateway.inventory.position(RED)).reserved == 0
    again = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)
    assert again.status_code == 200


async def test_a_confirmation_whose_answer_was_lost_is_recorded_once(
    gateway: Gateway, client: httpx.AsyncClient, wms_outage: Outage
) -> None:
    order_id = await released_order(client, "SHIP-10", *two_lines())
    wms_outage.lose_next_answer = True
    body = shipment(order_id, package("PKG-1", ("1", RED, 2)))

    lost = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)
    resent = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)

    assert lost.status_code == 202
    assert resent.status_code == 200
    assert resent.json()["shipped"] == {"1": 2}
    after = await gateway.inventory.position(RED)
    assert (after.on_hand, after.reserved) == (98, 1)
    [level] = await gateway.embedded_wms.stock_levels(sku=RED, warehouse=WAREHOUSE)
    assert level.on_hand == 98


async def test_a_package_the_warehouse_refuses_is_not_recorded(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-11", *two_lines())
    # The warehouse counts fewer mugs than the gateway believes it holds.
    await gateway.embedded_wms.adjust_stock(
        StockAdjustmentRequest(
            sku=RED,
            warehouse=WAREHOUSE,
            reason=AdjustmentReason.CYCLE_COUNT,
            reference="count-1",
            counted=1,
        )
    )

    refused = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 2))),
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/problems/invalid-document-state"
    found = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()
    assert found["pending_packages"] == [] and found["shipments"] == []
    assert (await gateway.inventory.position(RED)).reserved == 3


async def test_concurrent_packages_never_ship_more_than_ordered(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "SHIP-12", *two_lines())

    answers = await asyncio.gather(
        *(
            client.post(
                f"/process/v1/orders/{order_id}/shipments",
                json=shipment(order_id, package(f"PKG-{n}", ("1", RED, 2))),
            )
            for n in range(4)
        )
    )

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    found = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()
    assert found["shipped"] == {"1": 2}
    after = await gateway.inventory.position(RED)
    assert (after.on_hand, after.reserved) == (98, 1)


async def test_packages_the_warehouse_refuses_after_an_outage_open_an_exception(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await released_order(client, "SHIP-13", *two_lines())
    wms_outage.down = True
    deferred = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", RED, 3))),
    )
    assert deferred.status_code == 202
    await gateway.embedded_wms.adjust_stock(
        StockAdjustmentRequest(
            sku=RED,
            warehouse=WAREHOUSE,
            reason=AdjustmentReason.CYCLE_COUNT,
            reference="count-2",
            counted=1,
        )
    )

    wms_outage.down = False
    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1

    found = (await client.get(f"/process/v1/orders/{order_id}/shipments")).json()
    assert found["pending_packages"] == [] and found["shipments"] == []
    assert found["order_status"] == "released"
    [exception] = await gateway.store.read(
        lambda conn: list_exceptions(conn, workflow="fulfilment", subject=f"order/{order_id}")
    )
    assert exception.code == "shipment_refused"
    assert "PKG-1" in exception.detail
    assert (await gateway.inventory.position(RED)).reserved == 3
