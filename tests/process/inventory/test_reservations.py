"""Reservations: never beyond on-hand, all or nothing per order, released, consumed, expired."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.exceptions import ExceptionStatus
from gateway_infra.clock import ManualClock
from gateway_infra.scheduler import Scheduler
from gateway_infra.unit_of_work import Store
from process_api.exceptions import list_exceptions
from process_api.inventory import (
    EXPIRY_TIMER,
    InventoryService,
    ReservationNotFound,
    Shortfall,
    consume,
    expire_due,
    release_order,
    report_on_hand,
    set_expiry,
)
from tests.process.inventory.support import (
    events,
    order_id,
    pos,
    profile,
    profiles,
    publish,
    reservation_rows,
    reserve,
    stock,
    timer_keys,
)


async def test_last_unit_is_reserved_once_and_the_second_order_gets_a_shortfall(
    store: Store,
) -> None:
    stock(store, {"MUG": 1})

    first = reserve(store, "A-1", ("1", "MUG", 1))
    second = reserve(store, "A-2", ("1", "MUG", 1))

    assert first == []
    assert second == [Shortfall(line_id="1", sku="MUG", requested=1, available=0)]
    assert pos(store, "MUG").reserved == 1
    assert reservation_rows(store, "A-2") == []


async def test_an_order_is_reserved_whole_or_not_at_all(store: Store) -> None:
    stock(store, {"MUG": 5, "PLATE": 2, "BOWL": 9})

    shortfalls = reserve(
        store, "B-1", ("1", "MUG", 2), ("2", "PLATE", 3), ("3", "BOWL", 1), ("4", "NEVER-SEEN", 1)
    )

    assert shortfalls == [
        Shortfall("2", "PLATE", requested=3, available=2),
        Shortfall("4", "NEVER-SEEN", requested=1, available=0),
    ]
    assert [pos(store, sku).reserved for sku in ("MUG", "PLATE", "BOWL")] == [0, 0, 0]
    assert reservation_rows(store) == []


async def test_lines_of_one_sku_share_its_free_units_in_order(store: Store) -> None:
    stock(store, {"MUG": 3})

    shortfalls = reserve(store, "C-1", ("1", "MUG", 2), ("2", "MUG", 2))

    assert shortfalls == [Shortfall("2", "MUG", requested=2, available=1)]
    assert pos(store, "MUG").reserved == 0


async def test_reserving_the_same_order_again_changes_nothing(store: Store) -> None:
    stock(store, {"MUG": 3})
    assert reserve(store, "D-1", ("1", "MUG", 2)) == []

    again = reserve(store, "D-1", ("1", "MUG", 2))

    assert again == []
    assert pos(store, "MUG").reserved == 2
    assert len(reservation_rows(store, "D-1")) == 1


async def test_a_released_order_reserved_again_stays_released(store: Store) -> None:
    stock(store, {"MUG": 3})
    reserve(store, "D-2", ("1", "MUG", 2))
    store.write_sync(lambda uow: release_order(uow, order_id("D-2"), "cancelled"))

    again = reserve(store, "D-2", ("1", "MUG", 2))

    assert again == []
    assert pos(store, "MUG").reserved == 0
    assert [row.state for row in reservation_rows(store, "D-2")] == ["released"]


async def test_invalid_lines_are_refused_before_anything_is_written(store: Store) -> None:
    stock(store, {"MUG": 3})

    with pytest.raises(ValueError, match="must be > 0"):
        reserve(store, "E-1", ("1", "MUG", 0))
    with pytest.raises(ValueError, match="twice"):
        reserve(store, "E-1", ("1", "MUG", 1), ("1", "MUG", 1))
    assert reservation_rows(store) == []


async def test_cancelling_releases_the_open_quantity_with_its_reason(store: Store) -> None:
    stock(store, {"MUG": 5, "PLATE": 5})
    reserve(store, "F-1", ("1", "MUG", 2), ("2", "PLATE", 3))
    store.write_sync(lambda uow: consume(uow, order_id("F-1"), "1", 1))

    released = store.write_sync(lambda uow: release_order(uow, order_id("F-1"), "cancelled"))

    assert released == 2
    assert pos(store, "MUG").reserved == 0
    assert pos(store, "PLATE").reserved == 0
    assert {row.line_id: row.state for row in reservation_rows(store, "F-1")} == {
        "1": "released",
        "2": "released",
    }
    [event] = events(store, "inventory.reservation.released")
    assert event["data"]["reason"] == "cancelled"
    assert event["data"]["lines"] == [
        {"line_id": "1", "sku": "MUG", "quantity": 1},
        {"line_id": "2", "sku": "PLATE", "quantity": 3},
    ]
    assert store.write_sync(lambda uow: release_order(uow, order_id("F-1"), "again")) == 0


async def test_shipping_consumes_the_reservation_and_takes_the_units_off_on_hand(
    store: Store,
) -> None:
    stock(store, {"MUG": 10})
    reserve(store, "G-1", ("1", "MUG", 3))

    partial = store.write_sync(lambda uow: consume(uow, order_id("G-1"), "1", 2))
    after_partial = pos(store, "MUG")
    rest = store.write_sync(lambda uow: consume(uow, order_id("G-1"), "1", 1))

    assert (partial.consumed, partial.fully_consumed) == (2, False)
    assert (after_partial.on_hand, after_partial.reserved) == (8, 1)
    assert (rest.consumed, rest.fully_consumed) == (1, True)
    assert (pos(store, "MUG").on_hand, pos(store, "MUG").reserved) == (7, 0)
    [row] = reservation_rows(store, "G-1")
    assert (row.state, row.consumed) == ("consumed", 3)


async def test_a_shipment_beyond_the_reservation_still_leaves_on_hand(store: Store) -> None:
    stock(store, {"MUG": 4})
    reserve(store, "G-2", ("1", "MUG", 1))

    consumption = store.write_sync(lambda uow: consume(uow, order_id("G-2"), "1", 3))

    assert (consumption.consumed, consumption.beyond_reservation) == (1, 2)
    assert (pos(store, "MUG").on_hand, pos(store, "MUG").reserved) == (1, 0)
    with pytest.raises(ReservationNotFound):
        store.write_sync(lambda uow: consume(uow, order_id("G-2"), "no-such-line", 1))


async def test_reservations_expire_once_the_clock_passes_their_expiry(
    store: Store, clock: ManualClock
) -> None:
    stock(store, {"MUG": 2})
    expires_at = clock.now() + timedelta(hours=1)
    reserve(store, "H-1", ("1", "MUG", 2), expires_at=expires_at)
    assert timer_keys(store, EXPIRY_TIMER) == [order_id("H-1")]

    clock.advance(timedelta(minutes=59))
    assert store.write_sync(expire_due) == 0
    clock.advance(timedelta(minutes=1))
    expired = store.write_sync(expire_due)

    assert expired == 1
    assert pos(store, "MUG").reserved == 0
    assert [row.state for row in reservation_rows(store, "H-1")] == ["expired"]
    assert [e["data"]["order_id"] for e in events(store, "inventory.reservation.expired")] == [
        order_id("H-1")
    ]
    assert timer_keys(store, EXPIRY_TIMER) == []


async def test_the_expiry_timer_releases_the_order_through_the_scheduler(
    store: Store, clock: ManualClock
) -> None:
    stock(store, {"MUG": 2})
    channel = profiles(profile("webshop"))
    service = InventoryService(store, profiles=lambda conn: channel)
    scheduler = Scheduler(store)
    service.register_timers(scheduler)
    await service.reserve(
        order_id=order_id("H-2"),
        channel="webshop",
        channel_order_id="H-2",
        lines=[("1", "MUG", 2)],
        expires_at=clock.now() + timedelta(minutes=30),
    )
    assert await service.availability("MUG") == {"webshop": 0}

    assert await scheduler.run_due() == 0
    clock.advance(timedelta(minutes=30))
    ran = await scheduler.run_due()

    assert ran == 1
    assert (await service.position("MUG")).reserved == 0
    published = [e["data"]["quantity"] for e in events(store, "availability.changed")]
    assert published == [0, 2]
    assert timer_keys(store, EXPIRY_TIMER) == []


async def test_an_order_no_longer_pending_keeps_its_stock_past_the_expiry(
    store: Store, clock: ManualClock
) -> None:
    stock(store, {"MUG": 2})
    reserve(store, "H-3", ("1", "MUG", 1), expires_at=clock.now() + timedelta(minutes=5))

    store.write_sync(lambda uow: set_expiry(uow, order_id("H-3"), None))
    clock.advance(timedelta(days=30))

    assert store.write_sync(expire_due) == 0
    assert pos(store, "MUG").reserved == 1
    assert timer_keys(store, EXPIRY_TIMER) == []


async def test_a_wms_count_below_reserved_is_taken_publishes_zero_and_raises_a_shortfall(
    store: Store, clock: ManualClock
) -> None:
    channels = profiles(
        profile("webshop"),
        profile("amazon", mode="percentage", percentage=50),
        profile("walmart", mode="ring_fenced", ring_fenced_quantity=3),
    )
    stock(store, {"MUG": 10})
    reserve(store, "I-1", ("1", "MUG", 6))
    publish(store, channels)

    counted = store.write_sync(lambda uow: report_on_hand(uow, "MUG", 4, clock.now()))
    changes = publish(store, channels, ["MUG"])

    assert (counted.on_hand, counted.reserved, counted.shortfall) == (4, 6, 2)
    [shortfall] = events(store, "inventory.shortfall")
    assert shortfall["data"] == {"sku": "MUG", "on_hand": 4, "reserved": 6, "missing": 2}
    assert {(p.channel, p.quantity) for p in changes} == {
        ("webshop", 0),
        ("amazon", 0),
        ("walmart", 0),
    }
    [raised] = store.database.run_read(
        lambda conn: list_exceptions(conn, status=ExceptionStatus.OPEN)
    )
    assert (raised.workflow, raised.code, raised.subject) == (
        "inventory_sync",
        "stock_shortfall",
        "inventory/MUG",
    )
    # The same count again is no new shortfall.
    store.write_sync(lambda uow: report_on_hand(uow, "MUG", 4, clock.now()))
    assert len(events(store, "inventory.shortfall")) == 1
    # Once the warehouse finds the units, the exception resolves itself.
    store.write_sync(lambda uow: report_on_hand(uow, "MUG", 6, clock.now()))
    [resolved] = store.database.run_read(lambda conn: list_exceptions(conn))
    assert resolved.status is ExceptionStatus.RESOLVED
    assert [entry.action for entry in resolved.history] == ["raised", "resolved"]


async def test_a_count_older_than_the_one_stored_is_ignored(
    store: Store, clock: ManualClock
) -> None:
    earlier = clock.now()
    clock.advance(timedelta(minutes=10))
    stock(store, {"MUG": 7})

    late = store.write_sync(lambda uow: report_on_hand(uow, "MUG", 3, earlier))

    assert late.on_hand == 7
