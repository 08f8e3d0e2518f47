"""Shipment confirmations per package, listings feeds tracked to their processing report, the
allow-list of outbound hosts and the cached Login with Amazon token, against the mock Amazon."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import AmazonAdapter, AmazonError
from process_api.pricing.models import EntryIn
from process_api.tables import amazon_feeds, amazon_package_confirmations, shipment_packages
from tests.amazon.conftest import CHANNEL, ECHO, FIRE_TV, RecordedSleep, no_violations
from tests.amazon.mock_amazon import AmazonState
from tests.amazon.support import (
    price_publication_states,
    report_schema,
    ship,
    stock_the_warehouse,
    the_order_id,
    unconfirmed_availability,
    uploaded_feeds,
)

# One worker runs them all, so Prism starts once per run.
pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]
AMAZON_ORDER = "123-4567890-1234567"
ECHO_ITEM, FIRE_TV_ITEM = "12345678901234", "12345678901235"


async def shipped_in_two_packages(gateway: Gateway, adapter: AmazonAdapter) -> str:
    await adapter.pull_orders()
    order_id = the_order_id(gateway, AMAZON_ORDER)
    await stock_the_warehouse(gateway, ECHO, FIRE_TV)
    await gateway.fulfilment.release(order_id, actor="test")
    await ship(
        gateway,
        order_id,
        "SHP-1",
        gateway.clock.now(),
        ("PKG-1", "1Z-ONE", [(ECHO_ITEM, ECHO, 2)]),
        ("PKG-2", "1Z-TWO", [(FIRE_TV_ITEM, FIRE_TV, 1)]),
    )
    return order_id


async def test_a_confirmation_sent_again_keeps_its_package_reference_never_duplicating(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    await shipped_in_two_packages(gateway, adapter)
    await adapter.confirm_shipments()
    # Amazon took the first package's confirmation, but the gateway stopped before recording it.
    gateway.database.run_write(
        lambda conn: conn.execute(
            delete(amazon_package_confirmations).where(
                amazon_package_confirmations.c.package_id
                == select(shipment_packages.c.id)
                .where(shipment_packages.c.package_reference == "PKG-1")
                .scalar_subquery()
            )
        )
    )

    resent = await adapter.confirm_shipments()

    assert resent.packages_confirmed == 1
    sent = [
        (c.body["packageDetail"]["packageReferenceId"], c.body["packageDetail"]["trackingNumber"])
        for c in amazon.calls("POST", f"/orders/v0/orders/{AMAZON_ORDER}/shipmentConfirmation")
    ]
    first, second, again = sent
    assert first[0] != second[0]
    assert again == first
    assert (await adapter.confirm_shipments()).packages_confirmed == 0
    no_violations(amazon)


async def test_confirmations_are_paced_by_the_rate_amazon_announces(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, sleeps: RecordedSleep
) -> None:
    await shipped_in_two_packages(gateway, adapter)
    amazon.rate_limits["/orders/v0/"] = "0.5"  # confirmShipment: one call per 2 s

    report = await adapter.confirm_shipments()

    assert report.packages_confirmed == 2
    assert adapter.client.rates["confirmShipment"] == 0.5
    assert sleeps.delays == [2.0]


async def test_a_message_the_processing_report_refuses_stays_unconfirmed_as_an_exception(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    await adapter.pull_orders()  # publishes both SKUs' availability to the channel
    amazon.refused_skus.add(FIRE_TV)

    pushed = await adapter.push_listings()
    tracked = await adapter.track_submissions()

    assert pushed.availability_sent == 2
    assert (tracked.feeds_finished, tracked.confirmations) == (1, 1)
    assert set(unconfirmed_availability(gateway)) == {FIRE_TV}
    [exception_id] = tracked.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert (record.code, record.workflow) == ("amazon_listing_refused", "inventory_sync")
    assert FIRE_TV in record.detail and "90220" in record.detail
    # The refused value is not sent again as it is; nothing else is waiting.
    assert (await adapter.push_listings()).availability_sent == 0
    [feed] = uploaded_feeds(amazon, amazon_models)
    assert [m["sku"] for m in feed["messages"]] == sorted([ECHO, FIRE_TV])
    feed_id = next(iter(amazon.feeds))
    assert list(report_schema(amazon_models).iter_errors(amazon.report_for(feed_id))) == []
    no_violations(amazon)


async def test_a_feed_that_ends_fatal_confirms_nothing_and_its_changes_go_out_again(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    await adapter.pull_orders()
    amazon.feed_status = "FATAL"
    await adapter.push_listings()

    tracked = await adapter.track_submissions()

    [exception_id] = tracked.exceptions
    assert (await gateway.exceptions.require(exception_id)).code == "amazon_feed_failed"
    assert set(unconfirmed_availability(gateway)) == {ECHO, FIRE_TV}
    states = gateway.database.run_read(
        lambda conn: list(conn.execute(select(amazon_feeds.c.state)).scalars())
    )
    assert states == ["failed"]
    amazon.feed_status = "DONE"
    assert (await adapter.push_listings()).availability_sent == 2
    await adapter.track_submissions()
    assert unconfirmed_availability(gateway) == {}


async def test_a_feed_still_processing_is_asked_again_later(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    await adapter.pull_orders()
    amazon.feed_status = "IN_PROGRESS"
    await adapter.push_listings()

    waiting = await adapter.track_submissions()
    repeat = await adapter.push_listings()  # in flight: not sent twice

    assert (waiting.feeds_finished, repeat.availability_sent) == (0, 0)
    assert set(unconfirmed_availability(gateway)) == {ECHO, FIRE_TV}


async def test_a_document_url_outside_the_allow_list_is_never_called(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    await adapter.pull_orders()
    amazon.rewrite_document_urls = False  # Prism's URL: a host nobody allowed

    report = await adapter.push_listings()

    [exception_id] = report.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert record.code == "amazon_call_failed"
    assert "not allow-listed" in record.detail
    assert amazon.documents == {}
    assert amazon.calls("POST", "/feeds/2021-06-30/feeds") == []


async def test_the_access_token_is_exchanged_once_and_renewed_before_it_expires(
    adapter: AmazonAdapter, amazon: AmazonState, clock: ManualClock
) -> None:
    await adapter.pull_orders()
    await adapter.pull_orders()
    assert len(amazon.tokens_issued) == 1
    assert adapter.client.token_requests == 1

    clock.advance(timedelta(seconds=3600 - 59))
    await adapter.pull_orders()

    assert len(amazon.tokens_issued) == 2
    used = {r.path for r in amazon.requests}
    assert used == {"/orders/2026-01-01/orders"}
    assert json.dumps(adapter.profile.model_dump()).find("test-client-secret") == -1


async def test_prism_flags_a_request_that_breaks_amazons_contract(
    adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    """The checks above have teeth: a confirmation without carrier and items is refused."""
    with pytest.raises(AmazonError) as refused:
        await adapter.client.call(
            "confirmShipment",
            "POST",
            f"/orders/v0/orders/{AMAZON_ORDER}/shipmentConfirmation",
            json={"marketplaceId": "ATVPDKIKX0DER", "packageDetail": {"packageReferenceId": "1"}},
            expect=(204,),
        )

    assert refused.value.status == 400
    [seen] = amazon.requests
    assert seen.violations is not None and "carrierCode" in seen.violations


async def test_a_token_amazon_stops_accepting_is_exchanged_again(
    adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    await adapter.pull_orders()
    amazon.tokens_issued.clear()  # Amazon revoked every token it issued

    report = await adapter.pull_orders()

    assert report.exceptions == []
    assert len(amazon.tokens_issued) == 1
    assert adapter.client.token_requests == 2


async def test_prices_in_a_feed_are_confirmed_by_its_report(
    gateway: Gateway,
    adapter: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
    clock: ManualClock,
) -> None:
    book = await gateway.pricing.create_book(CHANNEL, None, actor="test")
    await gateway.pricing.replace_entries(book.book_id, 1, [EntryIn(sku=FIRE_TV)], actor="test")
    await gateway.pricing.publish(book.book_id, 1, actor="test")

    pushed = await adapter.push_listings()
    tracked = await adapter.track_submissions()

    assert (pushed.prices_sent, tracked.confirmations, tracked.exceptions) == (1, 1, [])
    [feed] = uploaded_feeds(amazon, amazon_models)
    [message] = feed["messages"]
    assert message["sku"] == FIRE_TV
    assert message["patches"] == [
        {
            "op": "replace",
            "path": "/attributes/purchasable_offer",
            "value": [
                {
                    "marketplace_id": "ATVPDKIKX0DER",
                    "currency": "USD",
                    "our_price": [{"schedule": [{"value_with_tax": 49.99}]}],
                }
            ],
        }
    ]
    assert price_publication_states(gateway) == [(FIRE_TV, "base_price", "confirmed")]
