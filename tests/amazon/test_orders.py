"""Orders pulled from Amazon (searchOrders of the Orders API 2026-01-01, served by Prism from
Amazon's model) become canonical orders: pending ones hold stock with an expiry, confirmed ones
are accepted, cancelled ones release their stock, one order per Amazon order id."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contracts import OrderStatus
from gateway import Gateway
from process_api.marketplaces.amazon import AmazonAdapter
from process_api.marketplaces.amazon.orders import to_submission
from process_api.tables import amazon_order_cursors, orders, reservations
from tests.amazon.conftest import CHANNEL, ECHO, FIRE_TV, RecordedSleep, no_violations
from tests.amazon.mock_amazon import AmazonState

# One worker runs them all, so Prism starts once per run.
pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]
EXAMPLE_ID = "123-4567890-1234567"


def example_order(models: Path, **fulfillment: Any) -> dict[str, Any]:
    """The order of the searchOrders example response in Amazon's model, optionally with
    other fulfillment fields."""
    model = json.loads((models / "models/orders-api-model/orders_2026-01-01.json").read_text())
    response = model["paths"]["/orders/2026-01-01/orders"]["get"]["responses"]["200"]
    order: dict[str, Any] = copy.deepcopy(response["examples"]["application/json"]["orders"][0])
    order["fulfillment"].update(fulfillment)
    return order


def channel_orders(gateway: Gateway) -> Sequence[Any]:
    return gateway.database.run_read(
        lambda conn: conn.execute(select(orders).where(orders.c.channel == CHANNEL)).all()
    )


def reservations_of(gateway: Gateway, order_id: str) -> Sequence[Any]:
    return gateway.database.run_read(
        lambda conn: conn.execute(
            select(reservations).where(reservations.c.order_id == order_id)
        ).all()
    )


def test_the_models_example_order_maps_without_losing_the_fields_we_use(
    amazon_models: Path,
) -> None:
    order = example_order(amazon_models)

    submission = to_submission(order, channel=CHANNEL)

    assert submission.channel_order_id == EXAMPLE_ID
    assert submission.currency == "USD"
    assert not submission.pending  # SHIPPED
    assert submission.placed_at is not None
    assert submission.placed_at.isoformat() == "2024-12-25T10:30:00+00:00"
    assert [
        (line.line_id, line.sku, line.quantity, str(line.unit_price.amount))
        for line in submission.lines
    ] == [
        (item["orderItemId"], item["product"]["sellerSku"], item["quantityOrdered"], "49.99")
        for item in order["orderItems"]
    ]
    assert [line.sku for line in submission.lines] == [ECHO, FIRE_TV]
    address = submission.shipping_address
    assert address is not None
    assert (address.name, address.line1, address.line2, address.city) == (
        "John Smith",
        "123 Main Street",
        "Suite 456",
        "Seattle",
    )
    assert (address.region, address.postal_code, address.country) == ("WA", "98101", "US")
    assert submission.customer is not None
    assert submission.customer.name == "John Smith"
    assert submission.customer.email == "buyer-email@marketplace.amazon.com"
    assert submission.customer.phone == "555-123-4567"


async def test_pulled_orders_become_one_canonical_order_each_with_reservations(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    first = await adapter.pull_orders()
    again = await adapter.pull_orders()

    no_violations(amazon)
    assert first.exceptions == [] and again.exceptions == []
    assert (first.orders_created, again.orders_created) == (1, 0)
    [order] = channel_orders(gateway)
    assert order.channel_order_id == EXAMPLE_ID
    assert order.status == OrderStatus.ACCEPTED
    assert sorted((r.sku, r.quantity) for r in reservations_of(gateway, order.order_id)) == [
        (ECHO, 2),
        (FIRE_TV, 1),
    ]
    searches = amazon.calls("GET", "/orders/2026-01-01/orders")
    assert len(searches) == 2 * adapter.profile.max_pages_per_round


async def test_the_cursor_moves_to_amazons_bound_only_after_the_last_page(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    # Prism's example always has a next page: a round stops at its page limit, keeps the
    # token and the start, and continues from there next round.
    await adapter.pull_orders()

    cursor = gateway.database.run_read(
        lambda conn: conn.execute(select(amazon_order_cursors)).one()
    )
    assert cursor.pagination_token == "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"
    pages = amazon.calls("GET", "/orders/2026-01-01/orders")
    assert len(pages) == adapter.profile.max_pages_per_round
    no_violations(amazon)


async def test_a_pending_order_holds_stock_until_its_expiry_and_a_cancel_releases_it(
    gateway: Gateway, adapter: AmazonAdapter, amazon_models: Path
) -> None:
    pending = example_order(amazon_models, fulfillmentStatus="PENDING")
    for item in pending["orderItems"]:
        del item["product"]["price"]  # Amazon leaves prices out while an order is pending

    await adapter.take_order(pending)

    [order] = channel_orders(gateway)
    assert order.status == OrderStatus.RESERVED
    canonical = await gateway.orders.require(order.order_id)
    assert {str(line.unit_price.amount) for line in canonical.lines} == {"49.99"}  # ERP list
    held = reservations_of(gateway, order.order_id)
    assert {r.state for r in held} == {"held"}
    assert all(r.expires_at == gateway.clock.now() + timedelta(days=21) for r in held), (
        "Amazon keeps orders pending up to 21 days"
    )

    report = await adapter.take_order(example_order(amazon_models, fulfillmentStatus="CANCELLED"))

    assert report.orders_cancelled == 1
    [order] = channel_orders(gateway)
    assert order.status == OrderStatus.CANCELLED
    assert {r.state for r in reservations_of(gateway, order.order_id)} == {"released"}


async def test_an_order_the_gateway_refuses_opens_a_seller_cancellation_exception(
    gateway: Gateway, adapter: AmazonAdapter, amazon_models: Path
) -> None:
    order = example_order(amazon_models, fulfillmentStatus="UNSHIPPED")
    order["orderItems"][0]["quantityOrdered"] = 500  # more than the warehouse holds

    report = await adapter.take_order(order)

    [row] = channel_orders(gateway)
    assert row.status == OrderStatus.REJECTED
    [exception_id] = report.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert record.code == "amazon_seller_cancellation_needed"
    assert record.subject == f"order/{row.order_id}"
    assert "the gateway cancels the order on Amazon as the seller" in record.detail


async def test_a_429_on_the_first_attempt_is_retried_with_backoff_then_succeeds(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, sleeps: RecordedSleep
) -> None:
    amazon.throttle["/orders/2026-01-01/orders"] = 1

    report = await adapter.pull_orders()

    assert report.exceptions == []
    statuses = [r.status for r in amazon.calls("GET", "/orders/2026-01-01/orders")]
    assert statuses[:2] == [429, 200]
    assert len(sleeps.delays) == 1 and 0.5 <= sleeps.delays[0] <= 1.0
    assert len(channel_orders(gateway)) == 1


async def test_a_429_that_never_ends_becomes_an_exception_and_the_cursor_stays(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, sleeps: RecordedSleep
) -> None:
    amazon.throttle["/orders/2026-01-01/orders"] = 100

    report = await adapter.pull_orders()

    statuses = [r.status for r in amazon.calls("GET", "/orders/2026-01-01/orders")]
    assert statuses == [429, 429, 429]  # max_attempts
    assert len(sleeps.delays) == 2
    assert sleeps.delays[1] > sleeps.delays[0] / 2  # the ceiling doubles
    [exception_id] = report.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert (record.code, record.workflow) == ("amazon_call_failed", "order_capture")
    assert "429" in record.detail
    assert channel_orders(gateway) == []
    assert (
        gateway.database.run_read(lambda conn: conn.execute(select(amazon_order_cursors)).all())
        == []
    )

    amazon.throttle.clear()
    await adapter.pull_orders()
    assert (await gateway.exceptions.require(exception_id)).status == "resolved"


async def test_a_pending_order_amazon_confirms_is_validated_at_amazons_prices(
    gateway: Gateway, adapter: AmazonAdapter, amazon_models: Path
) -> None:
    pending = example_order(amazon_models, fulfillmentStatus="PENDING")
    for item in pending["orderItems"]:
        del item["product"]["price"]
    await adapter.take_order(pending)

    report = await adapter.take_order(example_order(amazon_models, fulfillmentStatus="UNSHIPPED"))

    assert report.exceptions == []
    [order] = channel_orders(gateway)
    assert order.status == OrderStatus.ACCEPTED
    canonical = await gateway.orders.require(order.order_id)
    assert {str(line.unit_price.amount) for line in canonical.lines} == {"49.99"}
    assert {r.state for r in reservations_of(gateway, order.order_id)} == {"held"}
    assert all(r.expires_at is None for r in reservations_of(gateway, order.order_id))


async def test_later_fulfilment_states_of_an_accepted_order_change_nothing(
    gateway: Gateway, adapter: AmazonAdapter, amazon_models: Path
) -> None:
    await adapter.take_order(example_order(amazon_models, fulfillmentStatus="UNSHIPPED"))
    [before] = channel_orders(gateway)

    for status in ("PARTIALLY_SHIPPED", "SHIPPED"):
        report = await adapter.take_order(example_order(amazon_models, fulfillmentStatus=status))
        assert (report.orders_created, report.exceptions) == (0, [])

    [after] = channel_orders(gateway)
    assert (after.order_id, after.status, after.updated_at) == (
        before.order_id,
        OrderStatus.ACCEPTED,
        before.updated_at,
    )


def test_an_order_without_restricted_data_keeps_what_amazon_shares(amazon_models: Path) -> None:
    order = example_order(amazon_models)
    order["buyer"] = {}
    order["recipient"]["deliveryAddress"] = {
        "city": "Seattle",
        "stateOrRegion": "WA",
        "postalCode": "98101",
        "countryCode": "US",
    }

    submission = to_submission(order, channel=CHANNEL)

    assert (submission.shipping_address, submission.customer) == (None, None)
    assert [line.sku for line in submission.lines] == [ECHO, FIRE_TV]
