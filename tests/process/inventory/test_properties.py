"""Random interleavings of intake, cancel, ship, expiry and stock adjustments keep the stock
invariants.

The warehouse is the embedded WMS: receipts, damage and cycle counts are adjustments in its ledger,
reported to inventory as its on-hand count, and a shipment is a package the WMS confirms for the
order's fulfilment before inventory consumes it. The test keeps its own model of on-hand, reserved
and the live orders, and after every step checks the database against it: no reservation beyond
on-hand when it was made, availability never negative on any channel, no held reservation without
a live order line, reserved = the open held quantities, and the WMS ledger sums to its on-hand,
which is the on-hand inventory holds.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, func, select

from contracts.shipment import Package, ShipmentLine
from contracts.wms import (
    AdjustmentReason,
    FulfilmentLine,
    FulfilmentRequest,
    ShipmentConfirmation,
    StockAdjustmentRequest,
)
from gateway_infra.clock import ManualClock
from gateway_infra.unit_of_work import Store
from process_api.inventory import (
    available_to_sell,
    consume,
    expire_due,
    release_order,
    report_on_hand,
)
from process_api.tables import inventory_positions, reservations
from system_api.errors import InvalidDocumentState
from system_api.tables import (
    wms_fulfilment_lines,
    wms_fulfilments,
    wms_ledger,
    wms_package_lines,
    wms_packages,
    wms_stock,
)
from system_api.wms.embedded import EmbeddedWms, LedgerBucket, ensure_warehouse
from tests.process.inventory.support import (
    CHANNEL,
    order_id,
    profile,
    profiles,
    publish,
    reserve,
    reset,
)

T = TypeVar("T")
SKUS = ("A", "B", "C")
WAREHOUSE = "WH"
CHANNELS = profiles(
    profile("webshop"),
    profile("amazon", mode="percentage", percentage=50, buffer=1),
    profile("walmart", mode="ring_fenced", ring_fenced_quantity=2, floor=1, safety_stock=1),
)

intake = st.tuples(
    st.just("intake"),
    st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(1, 60)),  # pending: expires after so many minutes
)
initial_stock = st.fixed_dictionaries({sku: st.integers(0, 10) for sku in SKUS})
operations = st.lists(
    st.one_of(
        intake,
        intake,
        intake,
        st.tuples(st.just("cancel"), st.integers(0, 99)),
        st.tuples(st.just("ship"), st.integers(0, 99), st.integers(0, 2), st.integers(1, 4)),
        st.tuples(st.just("expire"), st.integers(1, 45)),
        st.tuples(st.just("count"), st.sampled_from(SKUS), st.integers(0, 12)),
        st.tuples(st.just("receipt"), st.sampled_from(SKUS), st.integers(1, 6)),
        st.tuples(st.just("damage"), st.sampled_from(SKUS), st.integers(1, 4)),
        st.tuples(st.just("repeat"), st.integers(0, 99)),
        st.just(("publish",)),
    ),
    min_size=10,
    max_size=40,
)


@dataclass
class Line:
    line_id: str
    sku: str
    quantity: int
    consumed: int = 0
    """Units taken out of the line's reservation by shipments."""
    shipped: int = 0
    """Units the warehouse shipped for the line (beyond the reservation once it was released)."""

    @property
    def open(self) -> int:
        return self.quantity - self.consumed


@dataclass
class ModelOrder:
    key: str
    lines: list[Line]
    expires_at: datetime | None
    reserved: bool
    """Its stock was reserved at intake (else it got shortfalls and holds nothing)."""
    live: bool
    """Still holding stock: reserved, and neither cancelled nor expired since."""


@dataclass
class Model:
    on_hand: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKUS, 0))
    reserved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKUS, 0))
    orders: list[ModelOrder] = field(default_factory=list)
    documents: int = 0
    """WMS documents (adjustments, packages) so far, for their unique references."""

    def next_reference(self, prefix: str) -> str:
        self.documents += 1
        return f"{prefix}-{self.documents}"

    def holding(self) -> list[ModelOrder]:
        return [o for o in self.orders if o.live and any(line.open for line in o.lines)]

    def give_back(self, order: ModelOrder) -> None:
        for line in order.lines:
            self.reserved[line.sku] -= line.open
        order.live = False


class Warehouse:
    """The embedded WMS, driven from this synchronous test on an event loop of its own."""

    def __init__(self, store: Store, runner: asyncio.Runner) -> None:
        self.wms = EmbeddedWms(store)
        self.runner = runner
        store.write_sync(lambda uow: ensure_warehouse(uow, WAREHOUSE, "Main warehouse"))

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(call)


def read_state(conn: Connection) -> tuple[dict[str, tuple[int, int]], list[Any]]:
    stock = {
        row.sku: (row.on_hand, row.reserved) for row in conn.execute(select(inventory_positions))
    }
    held = conn.execute(select(reservations).where(reservations.c.state == "held")).all()
    return stock, list(held)


def read_warehouse(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per SKU: the WMS's on-hand and the sum of its on-hand ledger entries."""
    counted = {
        row.sku: row.on_hand
        for row in conn.execute(
            select(wms_stock.c.sku, wms_stock.c.on_hand).where(wms_stock.c.warehouse == WAREHOUSE)
        )
    }
    ledger = {
        row.sku: int(row.total)
        for row in conn.execute(
            select(wms_ledger.c.sku, func.sum(wms_ledger.c.delta).label("total"))
            .where(wms_ledger.c.warehouse == WAREHOUSE, wms_ledger.c.bucket == LedgerBucket.ON_HAND)
            .group_by(wms_ledger.c.sku)
        )
    }
    return {sku: (counted.get(sku, 0), ledger.get(sku, 0)) for sku in SKUS}


def wipe_warehouse(store: Store) -> None:
    """Empty the WMS's stock, ledger and fulfilments (between hypothesis examples)."""

    def wipe(conn: Connection) -> None:
        for table in (
            wms_package_lines,
            wms_packages,
            wms_fulfilment_lines,
            wms_fulfilments,
            wms_ledger,
            wms_stock,
        ):
            conn.execute(delete(table))

    store.database.run_write(wipe)


def check_invariants(store: Store, model: Model) -> None:
    stock, held, warehouse = store.database.run_read(
        lambda conn: (*read_state(conn), read_warehouse(conn))
    )
    open_held: dict[str, int] = defaultdict(int)
    for row in held:
        open_held[row.sku] += row.quantity - row.consumed
    live_lines = {
        (order_id(o.key), line.line_id): line.open
        for o in model.orders
        if o.live
        for line in o.lines
        if line.open
    }
    # No held reservation without a live order line, with the same open quantity.
    assert {(row.order_id, row.line_id): row.quantity - row.consumed for row in held} == live_lines
    for sku in SKUS:
        on_hand, reserved = stock.get(sku, (0, 0))
        assert on_hand >= 0
        assert reserved >= 0
        assert reserved == open_held[sku]
        assert (on_hand, reserved) == (model.on_hand[sku], model.reserved[sku])
        # The WMS ledger sums to the WMS's on-hand, which is the on-hand inventory holds.
        assert warehouse[sku] == (on_hand, on_hand), (sku, warehouse[sku], on_hand)
        for channel, channel_profile in CHANNELS.items():
            available = available_to_sell(on_hand, reserved, channel_profile.availability)
            assert available >= 0, (channel, sku)
            if on_hand <= reserved:
                assert available == 0, (channel, sku)


def apply(
    store: Store, warehouse: Warehouse, clock: ManualClock, model: Model, op: tuple[Any, ...]
) -> None:
    kind = op[0]
    if kind == "intake":
        _, wanted, expires_in = op
        key = f"O{len(model.orders)}"
        lines = [Line(str(n), sku, quantity) for n, (sku, quantity) in enumerate(wanted, 1)]
        expires_at = None if expires_in is None else clock.now() + timedelta(minutes=expires_in)
        totals: dict[str, int] = defaultdict(int)
        for line in lines:
            totals[line.sku] += line.quantity
        fits = all(q <= model.on_hand[s] - model.reserved[s] for s, q in totals.items())
        shortfalls = reserve(
            store,
            key,
            *[(line.line_id, line.sku, line.quantity) for line in lines],
            expires_at=expires_at,
        )
        assert (shortfalls == []) == fits, (shortfalls, totals, model.on_hand, model.reserved)
        model.orders.append(ModelOrder(key, lines, expires_at, reserved=fits, live=fits))
        if fits:
            for sku, quantity in totals.items():
                model.reserved[sku] += quantity
            # The reservation was made within on-hand.
            stock, _ = store.database.run_read(read_state)
            for sku in totals:
                assert stock[sku][1] <= stock[sku][0]
    elif kind == "cancel":
        holding = model.holding()
        if holding:
            order = holding[op[1] % len(holding)]
            store.write_sync(lambda uow: release_order(uow, order_id(order.key), "cancelled"))
            model.give_back(order)
    elif kind == "ship":
        # Any order that reserved stock, also once cancelled or expired (the warehouse shipped
        # anyway): then the units leave on-hand beyond the released reservation.
        reserving = [o for o in model.orders if o.reserved]
        if reserving:
            order = reserving[op[1] % len(reserving)]
            line = order.lines[op[2] % len(order.lines)]
            quantity = min(op[3], line.quantity - line.shipped)
            if quantity:
                ship(store, warehouse, model, order, line, quantity)
    elif kind == "expire":
        clock.advance(timedelta(minutes=op[1]))
        store.write_sync(expire_due)
        for order in model.holding():
            if order.expires_at is not None and order.expires_at <= clock.now():
                model.give_back(order)
    elif kind in ("count", "receipt", "damage"):
        _, sku, units = op
        if kind == "count":
            request = StockAdjustmentRequest(
                sku=sku,
                warehouse=WAREHOUSE,
                reason=AdjustmentReason.CYCLE_COUNT,
                reference=model.next_reference("COUNT"),
                counted=units,
            )
        else:
            delta = units if kind == "receipt" else -units
            request = StockAdjustmentRequest(
                sku=sku,
                warehouse=WAREHOUSE,
                reason=AdjustmentReason(kind),
                reference=model.next_reference(kind.upper()),
                delta=delta,
            )
        if kind == "damage" and units > model.on_hand[sku]:
            # The WMS never takes on-hand below zero; nothing changes anywhere.
            with pytest.raises(InvalidDocumentState):
                warehouse.run(warehouse.wms.adjust_stock(request))
            return
        adjusted = warehouse.run(warehouse.wms.adjust_stock(request))
        # The WMS reports its count; inventory takes it as it is.
        store.write_sync(lambda uow: report_on_hand(uow, sku, adjusted.on_hand, clock.now()))
        model.on_hand[sku] = units if kind == "count" else model.on_hand[sku] + delta
        assert adjusted.on_hand == model.on_hand[sku]
    elif kind == "repeat":
        if model.orders:
            order = model.orders[op[1] % len(model.orders)]
            if order.reserved:
                # Reserved before (in any state since): reserving again changes nothing.
                again = reserve(
                    store,
                    order.key,
                    *[(line.line_id, line.sku, line.quantity) for line in order.lines],
                    channel=CHANNEL,
                )
                assert again == []
    elif kind == "publish":
        for change in publish(store, CHANNELS):
            assert change.quantity >= 0
            on_hand, reserved = model.on_hand[change.sku], model.reserved[change.sku]
            policy = CHANNELS[change.channel].availability
            assert change.quantity == available_to_sell(on_hand, reserved, policy)


def ship(
    store: Store,
    warehouse: Warehouse,
    model: Model,
    order: ModelOrder,
    line: Line,
    quantity: int,
) -> None:
    """The WMS confirms a package of the line for the order's fulfilment, then inventory consumes
    it; a package the warehouse does not hold enough units for is refused, and changes nothing."""
    fulfilment = warehouse.run(
        warehouse.wms.request_fulfilment(
            FulfilmentRequest(
                order_reference=order_id(order.key),
                warehouse=WAREHOUSE,
                lines=[
                    FulfilmentLine(line_id=x.line_id, sku=x.sku, quantity=x.quantity)
                    for x in order.lines
                ],
            )
        )
    )
    reference = model.next_reference("PKG")
    confirmation = ShipmentConfirmation(
        packages=[
            Package(
                package_reference=reference,
                carrier="dhl",
                tracking_number=f"TRK-{reference}",
                lines=[ShipmentLine(line_id=line.line_id, sku=line.sku, quantity=quantity)],
            )
        ]
    )
    confirm = warehouse.wms.confirm_shipment(fulfilment.fulfilment_id, confirmation)
    if quantity > model.on_hand[line.sku]:
        with pytest.raises(InvalidDocumentState):
            warehouse.run(confirm)
        return
    warehouse.run(confirm)
    done = store.write_sync(lambda uow: consume(uow, order_id(order.key), line.line_id, quantity))
    taken = min(quantity, line.open) if order.live else 0
    assert (done.consumed, done.beyond_reservation) == (taken, quantity - taken)
    line.consumed += taken
    line.shipped += quantity
    model.reserved[line.sku] -= taken
    model.on_hand[line.sku] -= quantity


def test_random_interleavings_keep_the_stock_invariants(store: Store, clock: ManualClock) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(initial=initial_stock, ops=operations)
    def run(initial: dict[str, int], ops: list[tuple[Any, ...]]) -> None:
        reset(store)
        wipe_warehouse(store)
        model = Model()
        for sku, counted in initial.items():
            apply(store, warehouse, clock, model, ("count", sku, counted))
        for op in ops:
            apply(store, warehouse, clock, model, op)
            check_invariants(store, model)

    with asyncio.Runner() as runner:
        warehouse = Warehouse(store, runner)
        run()
