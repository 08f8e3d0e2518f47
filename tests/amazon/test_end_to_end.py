"""End to end against the mock Amazon: orders pulled become canonical orders with reservations;
a warehouse shipment produces a confirmShipment Prism accepts; an availability change produces
a listings feed that validates and whose report confirms it; a promotion produces a price
schedule (patchListingsItem) that Prism validates; an order the gateway refuses is cancelled on
Amazon by an order acknowledgement feed whose report resolves the exception."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts import Money, OrderStatus
from contracts.exceptions import ExceptionStatus
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import AmazonAdapter, build_amazon_adapter
from process_api.pricing.models import EntryIn, PromotionIn
from process_api.tables import amazon_cancellations
from tests.amazon.conftest import (
    CHANNEL,
    CREDENTIALS,
    ECHO,
    FIRE_TV,
    MARKETPLACE,
    SELLER,
    RecordedSleep,
    amazon_profile,
    no_violations,
)
from tests.amazon.mock_amazon import AmazonState
from tests.amazon.support import (
    messages_of,
    price_publication_states,
    ship,
    stock_the_warehouse,
    the_order_id,
    unconfirmed_availability,
    uploaded_acknowledgements,
    uploaded_feeds,
)
from tests.conftest import provisioned_database
from tests.factories import seed_stock

# One worker runs them all, so Prism starts once per run.
pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]
AMAZON_ORDER = "123-4567890-1234567"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This test runs on both databases (the others of the group on SQLite only)."""
    with provisioned_database(request.param, tmp_path) as url:
        yield url


ECHO_ITEM, FIRE_TV_ITEM = "12345678901234", "12345678901235"


async def test_orders_shipments_availability_and_promotions_round_trip_through_amazon(
    gateway: Gateway,
    adapter: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
    sleeps: RecordedSleep,
    clock: ManualClock,
) -> None:
    # Orders: the model's example order becomes one accepted order holding its stock.
    pulled = await adapter.pull_orders()
    assert (pulled.orders_created, pulled.exceptions) == (1, [])
    order_id = the_order_id(gateway, AMAZON_ORDER)
    order = await gateway.orders.require(order_id)
    assert order.status is OrderStatus.ACCEPTED
    assert [(line.line_id, line.sku, line.quantity) for line in order.lines] == [
        (ECHO_ITEM, ECHO, 2),
        (FIRE_TV_ITEM, FIRE_TV, 1),
    ]
    assert (await gateway.inventory.position(ECHO)).reserved == 2

    # Shipment: the warehouse ships the order in one package; Amazon is told once.
    await stock_the_warehouse(gateway, ECHO, FIRE_TV)
    await gateway.fulfilment.release(order_id, actor="test")
    shipped_at = gateway.clock.now()
    await ship(
        gateway,
        order_id,
        "SHP-1",
        shipped_at,
        ("PKG-1", "1Z999AA10123456784", [(ECHO_ITEM, ECHO, 2), (FIRE_TV_ITEM, FIRE_TV, 1)]),
    )
    confirmed = await adapter.confirm_shipments()
    again = await adapter.confirm_shipments()
    assert (confirmed.packages_confirmed, again.packages_confirmed) == (1, 0)
    [confirmation] = amazon.calls("POST", "/shipmentConfirmation")
    assert confirmation.path == f"/orders/v0/orders/{AMAZON_ORDER}/shipmentConfirmation"
    assert confirmation.status == 204
    detail = confirmation.body["packageDetail"]
    assert confirmation.body["marketplaceId"] == MARKETPLACE
    assert detail["packageReferenceId"].isdigit()
    assert (detail["carrierCode"], detail["trackingNumber"]) == ("UPS", "1Z999AA10123456784")
    assert detail["orderItems"] == [
        {"orderItemId": ECHO_ITEM, "quantity": 2},
        {"orderItemId": FIRE_TV_ITEM, "quantity": 1},
    ]

    # Availability: what was published goes out in a feed; the report confirms it.
    await adapter.push_listings()
    await adapter.track_submissions()
    assert unconfirmed_availability(gateway) == {}
    await gateway.inventory.report_on_hand(ECHO, 4, gateway.clock.now())
    assert unconfirmed_availability(gateway) == {ECHO: 4}
    pushed = await adapter.push_listings()
    assert pushed.availability_sent == 1
    tracked = await adapter.track_submissions()
    assert (tracked.feeds_finished, tracked.confirmations, tracked.exceptions) == (1, 1, [])
    assert unconfirmed_availability(gateway) == {}
    last_feed = uploaded_feeds(amazon, amazon_models)[-1]
    assert last_feed["header"] == {"sellerId": SELLER, "version": "2.0"}
    [message] = messages_of(last_feed)
    assert message["sku"] == ECHO and message["operationType"] == "PATCH"
    assert message["patches"] == [
        {
            "op": "replace",
            "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 4}],
        }
    ]

    # Promotion: a published price book with a promotion becomes a discounted price schedule.
    # The channel's lead time is 4 h: the schedule is sent 4 h before the promotion starts.
    starts, ends = gateway.clock.now() + timedelta(hours=6), gateway.clock.now() + timedelta(days=7)
    book = await gateway.pricing.create_book(CHANNEL, None, actor="test")
    await gateway.pricing.replace_entries(
        book.book_id,
        1,
        [
            EntryIn(
                sku=ECHO,
                promotions=[
                    PromotionIn(
                        promotion_id="HOLIDAY",
                        price=Money(amount=Decimal("39.99"), currency="USD"),
                        starts_at=starts,
                        ends_at=ends,
                    )
                ],
            )
        ],
        actor="test",
    )
    await gateway.pricing.publish(book.book_id, 1, actor="test")
    clock.advance(timedelta(hours=2))
    await gateway.scheduler.run_due()
    patcher = build_amazon_adapter(
        amazon_profile(amazon, listings_via="patch"),
        CREDENTIALS,
        store=gateway.store,
        orders=gateway.orders,
        sleep=sleeps,
    )
    try:
        prices = await patcher.push_listings()
    finally:
        await patcher.aclose()
    assert (prices.prices_sent, prices.exceptions) == (1, [])
    [patch] = amazon.calls("PATCH", f"/listings/2021-08-01/items/{SELLER}/{ECHO}")
    assert patch.status == 200
    [operation] = patch.body["patches"]
    assert operation["path"] == "/attributes/purchasable_offer"
    [offer] = operation["value"]
    assert offer["marketplace_id"] == MARKETPLACE and offer["currency"] == "USD"
    assert offer["our_price"] == [{"schedule": [{"value_with_tax": 49.99}]}]
    assert offer["discounted_price"] == [
        {
            "schedule": [
                {
                    "start_at": starts.isoformat().replace("+00:00", "Z"),
                    "end_at": ends.isoformat().replace("+00:00", "Z"),
                    "value_with_tax": 39.99,
                }
            ]
        }
    ]
    assert {state for _, _, state in price_publication_states(gateway)} == {"confirmed"}

    # Every request went through Prism's validation against Amazon's models; one access
    # token served every call until it neared its expiry (the clock moved 2 h).
    no_violations(amazon)
    assert len(amazon.tokens_issued) == 2
    assert sleeps.delays == []


async def test_one_sync_round_refuses_a_pulled_order_and_has_amazon_cancel_it(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    # The same round on the same databases, for an order the gateway refuses: the warehouse
    # counted none of the example order's Echo.
    seed_stock(gateway, 0, ECHO)

    report = await adapter.sync_round()

    assert (report.orders_created, report.cancellations_sent) == (1, 1)
    assert report.feeds_finished == 2  # the cancellation, and the availability it changed
    assert gateway.database.run_read(
        lambda conn: conn.execute(
            select(amazon_cancellations.c.amazon_order_id, amazon_cancellations.c.state)
        ).all()
    ) == [(AMAZON_ORDER, "accepted")]
    [exception_id] = report.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert record.code == "amazon_seller_cancellation_needed"
    assert record.status is ExceptionStatus.RESOLVED
    [envelope] = uploaded_acknowledgements(amazon)
    assert [
        (item.findtext("AmazonOrderItemCode"), item.findtext("CancelReason"))
        for item in envelope.iterfind("Message/OrderAcknowledgement/Item")
    ] == [(ECHO_ITEM, "NoInventory"), (FIRE_TV_ITEM, "GeneralAdjustment")]
    no_violations(amazon)
