"""An Amazon order the gateway refuses is cancelled on Amazon as the seller: an order
acknowledgement feed (POST_ORDER_ACKNOWLEDGEMENT_DATA, StatusCode Failure) sent once per order
through the Feeds API Prism serves, followed to its XML processing report, which resolves the
exception people see or leaves it open with Amazon's answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring as defused_fromstring
from sqlalchemy import delete, select

from contracts.exceptions import ExceptionStatus
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import AmazonAdapter, build_amazon_adapter
from process_api.marketplaces.amazon.acknowledgements import (
    CancelledItem,
    OrderCancellation,
    UnreadableReport,
    cancellation_feed,
    processing_report,
)
from process_api.marketplaces.amazon.repository import claim_cancellations
from process_api.tables import amazon_cancellations, amazon_feeds, amazon_orders
from tests.amazon.conftest import (
    CREDENTIALS,
    SELLER,
    RecordedSleep,
    amazon_profile,
    no_violations,
)
from tests.amazon.mock_amazon import AmazonState
from tests.amazon.support import uploaded_acknowledgements
from tests.amazon.test_orders import EXAMPLE_ID, example_order

pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]
FEED_TYPE = "POST_ORDER_ACKNOWLEDGEMENT_DATA"


def too_much_of_the_first_item(models: Path) -> dict[str, Any]:
    """The model's example order, confirmed, with more of its first item than the warehouse
    holds: the gateway refuses it."""
    order = example_order(models, fulfillmentStatus="UNSHIPPED")
    order["orderItems"][0]["quantityOrdered"] = 500
    return order


async def refused(gateway: Gateway, adapter: AmazonAdapter, models: Path) -> tuple[str, str]:
    """Takes in the refused order; (order id, id of its seller-cancellation exception)."""
    report = await adapter.take_order(too_much_of_the_first_item(models))
    [exception_id] = report.exceptions
    record = await gateway.exceptions.require(exception_id)
    assert record.code == "amazon_seller_cancellation_needed"
    return record.object_ids["order_id"], exception_id


def cancellation_states(gateway: Gateway) -> list[tuple[str, str]]:
    rows = gateway.database.run_read(
        lambda conn: conn.execute(
            select(amazon_cancellations.c.amazon_order_id, amazon_cancellations.c.state)
        ).all()
    )
    return [(r.amazon_order_id, r.state) for r in rows]


def created_cancellation_feeds(amazon: AmazonState) -> list[dict[str, Any]]:
    return [
        call.body
        for call in amazon.calls("POST", "/feeds/2021-06-30/feeds")
        if call.status == 202 and call.body["feedType"] == FEED_TYPE
    ]


async def test_a_refused_order_is_cancelled_on_amazon_by_one_acknowledgement_feed(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    order = too_much_of_the_first_item(amazon_models)
    first, second = (str(item["orderItemId"]) for item in order["orderItems"])
    order_id, exception_id = await refused(gateway, adapter, amazon_models)

    sent = await adapter.send_cancellations()

    assert sent.cancellations_sent == 1
    [document_request] = [
        c.body for c in amazon.calls("POST", "/feeds/2021-06-30/documents") if c.status == 201
    ]
    assert document_request == {"contentType": "text/xml; charset=UTF-8"}
    [feed] = created_cancellation_feeds(amazon)
    assert feed["marketplaceIds"] == ["ATVPDKIKX0DER"]
    [envelope] = uploaded_acknowledgements(amazon)
    assert envelope.tag == "AmazonEnvelope"
    assert envelope.findtext("Header/DocumentVersion") == "1.01"
    assert envelope.findtext("Header/MerchantIdentifier") == SELLER
    assert envelope.findtext("MessageType") == "OrderAcknowledgement"
    [message] = envelope.findall("Message")
    assert message.findtext("MessageID") == "1"
    acknowledgement = message.find("OrderAcknowledgement")
    assert acknowledgement is not None
    assert acknowledgement.findtext("AmazonOrderID") == EXAMPLE_ID
    assert acknowledgement.findtext("StatusCode") == "Failure"
    items = [
        (item.findtext("AmazonOrderItemCode"), item.findtext("CancelReason"))
        for item in acknowledgement.findall("Item")
    ]
    assert items == [(first, "NoInventory"), (second, "GeneralAdjustment")]
    # Pulled again (as a crash before the cursor moved would), the order changes nothing.
    await adapter.take_order(too_much_of_the_first_item(amazon_models))
    assert (await adapter.send_cancellations()).cancellations_sent == 0
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.OPEN

    tracked = await adapter.track_submissions()

    assert (tracked.feeds_finished, tracked.confirmations, tracked.exceptions) == (1, 1, [])
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "accepted")]
    assert len(created_cancellation_feeds(amazon)) == 1
    assert order_id
    no_violations(amazon)


async def test_a_cancellation_amazon_refuses_keeps_the_exception_open_with_its_message(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    amazon.refused_cancellations.add(EXAMPLE_ID)
    await adapter.send_cancellations()

    tracked = await adapter.track_submissions()

    assert tracked.exceptions == [exception_id]
    record = await gateway.exceptions.require(exception_id)
    assert record.status is ExceptionStatus.OPEN
    assert "99001: The order cannot be cancelled: it has shipped" in record.detail
    assert "Cancel the order as the seller on Amazon" in record.detail
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "refused")]
    # Not sent again: Amazon has answered; a person takes it from here.
    assert (await adapter.send_cancellations()).cancellations_sent == 0
    feed_state = gateway.database.run_read(
        lambda conn: conn.execute(select(amazon_feeds.c.state)).scalar_one()
    )
    assert feed_state == "partly_refused"
    no_violations(amazon)


def forget_the_order_was_seen(gateway: Gateway) -> None:
    """The gateway stopped after taking the order in, before recording it seen: the next pull
    takes it in again."""
    gateway.database.run_write(lambda conn: conn.execute(delete(amazon_orders)))


async def test_an_order_taken_in_again_keeps_what_amazon_said_of_its_cancellation(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    amazon.refused_cancellations.add(EXAMPLE_ID)
    await adapter.send_cancellations()
    await adapter.track_submissions()
    forget_the_order_was_seen(gateway)

    again = await adapter.take_order(too_much_of_the_first_item(amazon_models))

    assert again.exceptions == [exception_id]
    record = await gateway.exceptions.require(exception_id)
    assert record.status is ExceptionStatus.OPEN
    assert "99001: The order cannot be cancelled: it has shipped" in record.detail
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "refused")]
    assert (await adapter.send_cancellations()).cancellations_sent == 0


async def test_an_order_taken_in_again_after_amazon_took_its_cancellation_asks_nothing_more(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    await adapter.send_cancellations()
    await adapter.track_submissions()
    forget_the_order_was_seen(gateway)

    again = await adapter.take_order(too_much_of_the_first_item(amazon_models))

    assert again.exceptions == []
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "accepted")]
    assert (await adapter.send_cancellations()).cancellations_sent == 0


@pytest.fixture
async def restarted(
    gateway: Gateway, amazon: AmazonState, sleeps: RecordedSleep
) -> AsyncIterator[AmazonAdapter]:
    """The same marketplace's adapter as a gateway started again builds it: nothing in memory."""
    built = build_amazon_adapter(
        amazon_profile(amazon),
        CREDENTIALS,
        store=gateway.store,
        orders=gateway.orders,
        sleep=sleeps,
    )
    yield built
    await built.aclose()


async def test_a_cancellation_that_could_not_be_sent_goes_out_after_a_restart_and_only_once(
    gateway: Gateway,
    adapter: AmazonAdapter,
    restarted: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    amazon.throttle["/feeds/2021-06-30/documents"] = 100  # Amazon throttles throughout

    failed = await adapter.send_cancellations()

    [call_failed] = failed.exceptions
    assert (await gateway.exceptions.require(call_failed)).code == "amazon_call_failed"
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "to_send")]
    amazon.throttle.clear()

    assert (await restarted.send_cancellations()).cancellations_sent == 1
    assert (await restarted.send_cancellations()).cancellations_sent == 0
    assert (await gateway.exceptions.require(call_failed)).status is ExceptionStatus.RESOLVED
    assert len(created_cancellation_feeds(amazon)) == 1
    await restarted.track_submissions()
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED


async def test_two_gateways_sending_at_once_put_a_refused_order_in_one_feed_only(
    gateway: Gateway,
    adapter: AmazonAdapter,
    restarted: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
    clock: ManualClock,
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    sent_meanwhile: list[int] = []

    async def other_gateway_sends_meanwhile(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))
        if not sent_meanwhile:
            sent_meanwhile.append((await restarted.send_cancellations()).cancellations_sent)

    # The first gateway has read what to send when Amazon throttles it, and waits.
    amazon.throttle["/feeds/2021-06-30/documents"] = 1
    adapter.client.sleep = other_gateway_sends_meanwhile

    sent = await adapter.send_cancellations()

    assert (sent.cancellations_sent, sent_meanwhile) == (1, [0])
    assert len(created_cancellation_feeds(amazon)) == 1
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "submitted")]
    await adapter.track_submissions()
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED


async def test_a_cancellation_claimed_by_a_gateway_that_stopped_goes_out_once_the_claim_is_old(
    gateway: Gateway,
    adapter: AmazonAdapter,
    restarted: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
    clock: ManualClock,
) -> None:
    await refused(gateway, adapter, amazon_models)
    claimed = gateway.database.run_write(
        lambda conn: claim_cancellations(conn, "amazon_us", 100, clock.now(), clock.now())
    )
    assert [c.amazon_order_id for c in claimed] == [EXAMPLE_ID]  # then the gateway stopped

    assert (await restarted.send_cancellations()).cancellations_sent == 0
    clock.advance(restarted.cancellation_sync.abandoned_after)
    assert (await restarted.send_cancellations()).cancellations_sent == 0
    clock.advance(timedelta(seconds=1))
    assert (await restarted.send_cancellations()).cancellations_sent == 1
    assert len(created_cancellation_feeds(amazon)) == 1


async def test_a_fatal_cancellation_feed_is_sent_again_until_amazon_processes_it(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    await adapter.send_cancellations()
    amazon.feed_status = "FATAL"

    fatal = await adapter.track_submissions()

    [feed_failed] = fatal.exceptions
    record = await gateway.exceptions.require(feed_failed)
    assert record.code == "amazon_cancellation_feed_failed" and "FATAL" in record.detail
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "to_send")]
    amazon.feed_status = "DONE"
    assert (await adapter.send_cancellations()).cancellations_sent == 1
    assert (await adapter.track_submissions()).confirmations == 1
    assert len(created_cancellation_feeds(amazon)) == 2
    for done in (exception_id, feed_failed):
        assert (await gateway.exceptions.require(done)).status is ExceptionStatus.RESOLVED


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
async def test_an_unreadable_report_fails_its_feed_and_the_next_feeds_are_still_followed(
    gateway: Gateway,
    adapter: AmazonAdapter,
    amazon: AmazonState,
    amazon_models: Path,
    damage: str,
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)
    # Publishes availability (a listings feed, followed first) and sends the cancellation.
    assert (await adapter.pull_orders()).cancellations_sent == 1
    assert (await adapter.push_listings()).availability_sent > 0
    amazon.damaged_reports = damage

    tracked = await adapter.track_submissions()

    codes = [(await gateway.exceptions.require(e)).code for e in tracked.exceptions]
    assert codes == ["amazon_feed_failed", "amazon_cancellation_feed_failed"]
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "to_send")]
    feed_states = gateway.database.run_read(
        lambda conn: list(conn.execute(select(amazon_feeds.c.state)).scalars())
    )
    assert feed_states == ["failed", "failed"]
    # Nothing is stuck: the next round sends both again and reads Amazon's verdict.
    amazon.damaged_reports = None
    assert (await adapter.send_cancellations()).cancellations_sent == 1
    await adapter.push_listings()
    assert (await adapter.track_submissions()).exceptions == []
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED


async def test_a_token_answer_that_is_not_json_fails_the_step_and_keeps_the_round_going(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState
) -> None:
    amazon.token_answer = b"<html>Service Unavailable</html>"  # a proxy's page, status 200

    report = await adapter.sync_round()

    assert report.exceptions
    for exception_id in report.exceptions:
        record = await gateway.exceptions.require(exception_id)
        assert record.code == "amazon_call_failed" and "lwa_token" in record.detail


async def test_amazon_showing_a_refused_order_cancelled_ends_its_cancellation(
    gateway: Gateway, adapter: AmazonAdapter, amazon: AmazonState, amazon_models: Path
) -> None:
    _, exception_id = await refused(gateway, adapter, amazon_models)

    report = await adapter.take_order(example_order(amazon_models, fulfillmentStatus="CANCELLED"))

    # Nothing to release and nothing to ask of a person: the order was never accepted.
    assert (report.orders_cancelled, report.exceptions) == (0, [])
    assert (await gateway.exceptions.require(exception_id)).status is ExceptionStatus.RESOLVED
    assert cancellation_states(gateway) == [(EXAMPLE_ID, "accepted")]
    assert (await adapter.send_cancellations()).cancellations_sent == 0
    assert amazon.calls("POST", "/feeds/2021-06-30/feeds") == []


def test_the_acknowledgement_document_escapes_what_it_carries() -> None:
    document = cancellation_feed(
        [OrderCancellation("123-<&>\"'-1", [CancelledItem("item & <1>", "NoInventory")])],
        "SELLER&<x>",
    )

    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    envelope = defused_fromstring(document)
    assert envelope.findtext("Header/MerchantIdentifier") == "SELLER&<x>"
    acknowledgement = envelope.find("Message/OrderAcknowledgement")
    assert acknowledgement is not None
    assert acknowledgement.findtext("AmazonOrderID") == "123-<&>\"'-1"
    assert acknowledgement.findtext("Item/AmazonOrderItemCode") == "item & <1>"
    with pytest.raises(ValueError, match="XML cannot carry"):
        cancellation_feed([OrderCancellation("123\x00", [])], "SELLER")


def test_a_processing_report_with_a_document_type_is_refused_unread() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;">]><AmazonEnvelope>&b;</AmazonEnvelope>'
    )
    with pytest.raises(UnreadableReport):
        processing_report(bomb)
    with pytest.raises(UnreadableReport):
        processing_report(b"<AmazonEnvelope><Message/></AmazonEnvelope>")
