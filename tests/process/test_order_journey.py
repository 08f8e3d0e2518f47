"""GET /process/v1/orders/{id}/journey: one order's status changes and events across the
requests that touched it, each with its correlation id, the events with the order's origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.conftest import make_settings, start_gateway
from tests.factories import order_payload, seed_products
from tests.process.fulfilment.support import FlakyErp, Outage


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(make_settings(database_url), clock)
    yield built
    await built.aclose()


async def test_the_journey_lists_each_request_and_the_origin_of_every_event(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway)
    created = await client.post(
        "/process/v1/orders", json=order_payload("J-1"), headers={"X-Correlation-ID": "placed"}
    )
    order_id = created.json()["order_id"]
    clock.advance(timedelta(seconds=1))
    cancelled = await client.post(
        f"/process/v1/orders/{order_id}/cancel",
        json={"reason": "changed their mind"},
        headers={"X-Correlation-ID": "cancelled"},
    )
    assert cancelled.status_code == 200, cancelled.text

    journey = (await client.get(f"/process/v1/orders/{order_id}/journey")).json()

    assert journey["order_id"] == order_id
    assert journey["status"] == "cancelled"
    assert journey["origin_correlation_id"] == "placed"
    assert journey["correlation_ids"] == ["placed", "cancelled"]
    steps = [
        (s["kind"], s["to_status"] or s["type"], s["correlation_id"]) for s in journey["steps"]
    ]
    assert steps[0] == ("status_change", "received", "placed")
    assert ("event", "order.accepted", "placed") in steps
    cancel = steps[steps.index(("status_change", "cancelled", "cancelled")) :]
    assert ("event", "order.cancelled", "cancelled") in cancel
    assert ("event", "inventory.reservation.released", "cancelled") in cancel
    assert {correlation for _, _, correlation in cancel} == {"cancelled"}
    events = [s for s in journey["steps"] if s["kind"] == "event"]
    assert {e["origin_correlation_id"] for e in events} == {"placed"}
    # The ERP's documents of the order are part of its journey too.
    assert ("event", "erp.sales_order.created", "placed") in steps


async def test_the_journey_of_an_unknown_order_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/process/v1/orders/ord_unknown/journey")

    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not-found"


async def test_work_a_timer_finishes_later_is_found_under_the_request_that_needed_it(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway)
    outage = Outage("erp")
    gateway.orders.erp = FlakyErp(gateway.orders.erp, outage)
    outage.down = True
    deferred = await client.post(
        "/process/v1/orders", json=order_payload("J-2"), headers={"X-Correlation-ID": "placed"}
    )
    assert deferred.status_code == 202, deferred.text
    order_id = deferred.json()["order_id"]

    outage.down = False
    clock.advance(timedelta(minutes=5))
    assert await gateway.scheduler.run_due() >= 1  # the validation timer, in the background

    journey = (await client.get(f"/process/v1/orders/{order_id}/journey")).json()
    accepted = next(s for s in journey["steps"] if s["type"] == "order.accepted")
    assert accepted["correlation_id"] == "placed"
    assert journey["correlation_ids"] == ["placed"]
