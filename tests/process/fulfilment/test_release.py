"""Releasing accepted orders to the warehouse."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.order_to_cash.repository import erp_sales_order_id
from tests.process.fulfilment.support import Outage, accepted_order, events_of, history


async def test_releasing_twice_changes_nothing(gateway: Gateway, client: httpx.AsyncClient) -> None:
    order_id = await accepted_order(client, "REL-1")

    first = await client.post(f"/process/v1/orders/{order_id}/release")
    second = await client.post(f"/process/v1/orders/{order_id}/release")

    assert first.status_code == second.status_code == 200
    assert first.json()["fulfilment_id"] == second.json()["fulfilment_id"]
    assert history(second.json()["order"]).count("released") == 1
    assert len(await events_of(gateway, "order.released")) == 1
    assert await gateway.scheduler.run_due() == 0  # nothing left to retry


async def test_the_warehouse_gets_the_order_lines_and_the_erp_order_is_confirmed(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await accepted_order(client, "REL-2")

    released = (await client.post(f"/process/v1/orders/{order_id}/release")).json()

    fulfilment = await gateway.embedded_wms.get_fulfilment(released["fulfilment_id"])
    assert fulfilment is not None
    assert fulfilment.order_reference == order_id
    assert [(line.line_id, line.quantity) for line in fulfilment.lines] == [("1", 1)]
    erp_id = await gateway.store.read(lambda conn: erp_sales_order_id(conn, order_id))
    assert erp_id is not None
    sales_order = await gateway.embedded_erp.get_sales_order(erp_id)
    assert sales_order is not None
    assert sales_order.state.value == "confirmed"


async def test_a_cancelled_order_is_not_released(client: httpx.AsyncClient) -> None:
    order_id = await accepted_order(client, "REL-3")
    await client.post(f"/process/v1/orders/{order_id}/cancel")

    refused = await client.post(f"/process/v1/orders/{order_id}/release")

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/order-not-releasable"
    assert refused.json()["order_status"] == "cancelled"


async def test_an_unknown_order_is_not_found(client: httpx.AsyncClient) -> None:
    missing = await client.post("/process/v1/orders/ord_unknown/release")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_release_waits_while_the_wms_is_down_and_the_timer_completes_it(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await accepted_order(client, "REL-4")
    wms_outage.down = True

    deferred = await client.post(f"/process/v1/orders/{order_id}/release")

    assert deferred.status_code == 202, deferred.text
    assert deferred.json()["fulfilment_id"] is None
    assert deferred.json()["order"]["status"] == "accepted"
    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1  # still down: retried later
    assert (await client.get(f"/process/v1/orders/{order_id}")).json()["status"] == "accepted"

    wms_outage.down = False
    clock.advance(timedelta(minutes=10))
    assert await gateway.scheduler.run_due() == 1
    released = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert released["status"] == "released"
    again = await client.post(f"/process/v1/orders/{order_id}/release")
    assert again.status_code == 200
    assert again.json()["fulfilment_id"]
    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0


async def test_a_release_whose_answer_was_lost_is_not_released_twice(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await accepted_order(client, "REL-5")
    wms_outage.lose_next_answer = True

    deferred = await client.post(f"/process/v1/orders/{order_id}/release")
    clock.advance(timedelta(minutes=1))
    await gateway.scheduler.run_due()

    assert deferred.status_code == 202
    released = await client.post(f"/process/v1/orders/{order_id}/release")
    assert released.json()["order"]["status"] == "released"
    assert released.json()["fulfilment_id"] == "FUL-000001"
