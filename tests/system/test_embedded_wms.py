"""The embedded WMS: stock with a ledger that explains it, fulfilment, shipments and returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import delete, select

from contracts.returns import Disposition, InspectionGrade
from contracts.shipment import Package, ShipmentLine
from contracts.wms import (
    AdjustmentReason,
    Fulfilment,
    FulfilmentLine,
    FulfilmentRequest,
    FulfilmentState,
    InspectionLine,
    InspectionRequest,
    ReturnReceiptLineIn,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustmentRequest,
    StockLevel,
    Warehouse,
)
from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store
from system_api.errors import (
    DocumentNotFound,
    InvalidDocumentState,
    PackageAfterCompletion,
    QuantityExceeded,
)
from system_api.tables import (
    document_sequences,
    wms_fulfilment_lines,
    wms_fulfilments,
    wms_inspections,
    wms_ledger,
    wms_package_lines,
    wms_packages,
    wms_return_receipts,
    wms_stock,
)
from system_api.wms.embedded import EmbeddedWms, ensure_warehouse

MUG, TEE = "MUG-RED-350", "TEE-ORG-M"


@pytest.fixture
async def wms(database_url: str, clock: ManualClock) -> AsyncIterator[EmbeddedWms]:
    database = Database(database_url)
    embedded = EmbeddedWms(Store(database, clock))
    await embedded.ensure_warehouse("WH-1", "Main warehouse")
    await embedded.ensure_warehouse("WH-2", "Overflow warehouse")
    yield embedded
    database.dispose()


# ---------------------------------------------------------------- builders and readers


def adjustment(
    reason: AdjustmentReason,
    reference: str,
    *,
    sku: str = MUG,
    warehouse: str = "WH-1",
    delta: int | None = None,
    counted: int | None = None,
) -> StockAdjustmentRequest:
    return StockAdjustmentRequest(
        sku=sku,
        warehouse=warehouse,
        reason=reason,
        reference=reference,
        delta=delta,
        counted=counted,
    )


async def receive(
    wms: EmbeddedWms, quantity: int, *, sku: str = MUG, warehouse: str = "WH-1"
) -> None:
    reference = f"GR-{sku}-{warehouse}-{await ledger_count(wms)}"
    request = adjustment(
        AdjustmentReason.RECEIPT, reference, sku=sku, warehouse=warehouse, delta=quantity
    )
    await wms.adjust_stock(request)


def fulfilment_request(
    order_reference: str = "ORD-1", *lines: tuple[str, str, int], warehouse: str = "WH-1"
) -> FulfilmentRequest:
    items = lines or (("1", MUG, 3), ("2", TEE, 2))
    return FulfilmentRequest(
        order_reference=order_reference,
        warehouse=warehouse,
        lines=[FulfilmentLine(line_id=i, sku=sku, quantity=q) for i, sku, q in items],
    )


def package(
    reference: str, *lines: tuple[str, str, int], carrier: str = "dhl", tracking: str = "T-1"
) -> Package:
    return Package(
        package_reference=reference,
        carrier=carrier,
        tracking_number=tracking,
        lines=[ShipmentLine(line_id=i, sku=sku, quantity=q) for i, sku, q in lines],
    )


def shipment(*packages: Package, complete: bool = False) -> ShipmentConfirmation:
    return ShipmentConfirmation(packages=list(packages), complete=complete)


async def on_hand(wms: EmbeddedWms, sku: str = MUG, warehouse: str = "WH-1") -> int:
    levels = await wms.stock_levels(sku=sku, warehouse=warehouse)
    return levels[0].on_hand if levels else 0


async def rows(wms: EmbeddedWms, table: Any, *conditions: Any) -> list[Any]:
    def query(conn: Any) -> list[Any]:
        return list(conn.execute(select(table).where(*conditions).order_by(*table.primary_key)))

    return await wms.store.read(query)


async def ledger(wms: EmbeddedWms, sku: str = MUG) -> list[tuple[str, int, str, str]]:
    entries = await rows(wms, wms_ledger, wms_ledger.c.sku == sku)
    return [(e.bucket, e.delta, e.reason, e.reference) for e in entries]


async def ledger_count(wms: EmbeddedWms) -> int:
    return len(await rows(wms, wms_ledger))


async def events(wms: EmbeddedWms, type_: str) -> list[dict[str, Any]]:
    found = await rows(wms, outbox, outbox.c.type == type_)
    return [{"subject": e.subject, **e.data} for e in found]


async def assert_ledger_explains_stock(wms: EmbeddedWms) -> None:
    for level in await wms.stock_levels():
        assert level.on_hand >= 0
        assert await wms.ledger_on_hand(level.sku, level.warehouse) == level.on_hand


# ---------------------------------------------------------------- warehouses and stock


async def test_warehouses_are_listed_by_code_and_ensuring_one_again_renames_it(
    wms: EmbeddedWms,
) -> None:
    await wms.ensure_warehouse("WH-0", "Old name")
    await wms.ensure_warehouse("WH-0", "New name")
    wms.store.write_sync(lambda uow: ensure_warehouse(uow, "WH-3", "Seeded"))
    wms.store.write_sync(lambda uow: wms.ensure_warehouse_sync(uow, "WH-4", "Seeded too"))

    assert await wms.list_warehouses() == [
        Warehouse(code="WH-0", name="New name"),
        Warehouse(code="WH-1", name="Main warehouse"),
        Warehouse(code="WH-2", name="Overflow warehouse"),
        Warehouse(code="WH-3", name="Seeded"),
        Warehouse(code="WH-4", name="Seeded too"),
    ]


async def test_receipt_adds_on_hand_with_a_ledger_entry_and_an_event(
    wms: EmbeddedWms, clock: ManualClock
) -> None:
    applied = await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "GR-1", delta=10))

    assert (applied.delta, applied.on_hand, applied.at) == (10, 10, clock.now())
    assert await on_hand(wms) == 10
    assert await ledger(wms) == [("on_hand", 10, "receipt", "GR-1")]
    assert await events(wms, "wms.stock.adjusted") == [
        {
            "subject": f"stock/{MUG}@WH-1",
            "sku": MUG,
            "warehouse": "WH-1",
            "reason": "receipt",
            "reference": "GR-1",
            "delta": 10,
            "on_hand": 10,
        }
    ]


async def test_stock_levels_are_ordered_filtered_and_omit_skus_never_stocked(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 4, sku=TEE, warehouse="WH-2")
    await receive(wms, 1, sku=TEE, warehouse="WH-1")
    await receive(wms, 7, sku=MUG, warehouse="WH-2")

    assert await wms.stock_levels() == [
        StockLevel(sku=MUG, warehouse="WH-2", on_hand=7),
        StockLevel(sku=TEE, warehouse="WH-1", on_hand=1),
        StockLevel(sku=TEE, warehouse="WH-2", on_hand=4),
    ]
    assert await wms.stock_levels(sku=TEE) == [
        StockLevel(sku=TEE, warehouse="WH-1", on_hand=1),
        StockLevel(sku=TEE, warehouse="WH-2", on_hand=4),
    ]
    assert await wms.stock_levels(warehouse="WH-1") == [
        StockLevel(sku=TEE, warehouse="WH-1", on_hand=1)
    ]
    assert await wms.stock_levels(sku=MUG, warehouse="WH-1") == []
    assert await wms.stock_levels(warehouse="NO-SUCH") == []


async def test_the_same_adjustment_again_returns_the_original_without_applying_it_twice(
    wms: EmbeddedWms, clock: ManualClock
) -> None:
    request = adjustment(AdjustmentReason.RECEIPT, "GR-1", delta=5)
    first = await wms.adjust_stock(request)
    clock.advance(timedelta(minutes=5))
    await receive(wms, 3)

    again = await wms.adjust_stock(request)
    again_outcome = await wms.adjust_stock_outcome(request)

    assert again == first
    assert again.on_hand == 5  # the level it left then, not the level now
    assert again_outcome == (first, False)
    assert await on_hand(wms) == 8
    assert len(await events(wms, "wms.stock.adjusted")) == 2
    await assert_ledger_explains_stock(wms)


async def test_the_same_reference_is_kept_apart_per_sku_warehouse_and_reason(
    wms: EmbeddedWms,
) -> None:
    await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "DOC-1", delta=5))
    await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "DOC-1", sku=TEE, delta=2))
    await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "DOC-1", warehouse="WH-2", delta=1))
    await wms.adjust_stock(adjustment(AdjustmentReason.DAMAGE, "DOC-1", delta=-1))

    assert [(s.sku, s.warehouse, s.on_hand) for s in await wms.stock_levels()] == [
        (MUG, "WH-1", 4),
        (MUG, "WH-2", 1),
        (TEE, "WH-1", 2),
    ]


async def test_a_reference_reused_for_a_different_change_is_refused(wms: EmbeddedWms) -> None:
    await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "GR-1", delta=5))
    await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-1", counted=4))

    with pytest.raises(InvalidDocumentState, match="GR-1"):
        await wms.adjust_stock(adjustment(AdjustmentReason.RECEIPT, "GR-1", delta=6))
    with pytest.raises(InvalidDocumentState, match="CC-1"):
        await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-1", counted=3))
    assert (
        await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-1", counted=4))
    ).delta == -1
    assert await on_hand(wms) == 4


async def test_damage_taking_on_hand_below_zero_is_refused_and_changes_nothing(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 2)

    with pytest.raises(InvalidDocumentState, match="below zero"):
        await wms.adjust_stock(adjustment(AdjustmentReason.DAMAGE, "DMG-1", delta=-3))
    with pytest.raises(InvalidDocumentState):
        await wms.adjust_stock(adjustment(AdjustmentReason.DAMAGE, "DMG-2", sku=TEE, delta=-1))

    assert await on_hand(wms) == 2
    assert await wms.stock_levels(sku=TEE) == []
    assert len(await ledger(wms)) == 1
    damaged = await wms.adjust_stock(adjustment(AdjustmentReason.DAMAGE, "DMG-1", delta=-2))
    assert (damaged.delta, damaged.on_hand) == (-2, 0)


async def test_cycle_count_sets_the_counted_quantity_and_records_even_a_zero_difference(
    wms: EmbeddedWms,
) -> None:
    first = await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-1", counted=6))
    lower = await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-2", counted=4))
    same = await wms.adjust_stock(adjustment(AdjustmentReason.CYCLE_COUNT, "CC-3", counted=4))

    assert [(a.delta, a.on_hand) for a in (first, lower, same)] == [(6, 6), (-2, 4), (0, 4)]
    assert await ledger(wms) == [
        ("on_hand", 6, "cycle_count", "CC-1"),
        ("on_hand", -2, "cycle_count", "CC-2"),
        ("on_hand", 0, "cycle_count", "CC-3"),
    ]
    assert await on_hand(wms) == 4


async def test_adjustment_in_an_unknown_warehouse_is_not_found(wms: EmbeddedWms) -> None:
    with pytest.raises(DocumentNotFound, match="NO-SUCH"):
        await wms.adjust_stock(
            adjustment(AdjustmentReason.RECEIPT, "GR-1", warehouse="NO-SUCH", delta=1)
        )


async def test_concurrent_copies_of_one_adjustment_apply_it_once(wms: EmbeddedWms) -> None:
    request = adjustment(AdjustmentReason.RECEIPT, "GR-RACE", delta=3)

    results = await asyncio.gather(*(wms.adjust_stock(request) for _ in range(8)))

    assert {(r.delta, r.on_hand) for r in results} == {(3, 3)}
    assert await on_hand(wms) == 3
    assert len(await ledger(wms)) == 1


# ---------------------------------------------------------------- fulfilment and shipments


async def test_fulfilment_is_numbered_released_and_returned_again_for_the_same_order(
    wms: EmbeddedWms,
) -> None:
    first, created = await wms.request_fulfilment_outcome(fulfilment_request("ORD-1"))
    second = await wms.request_fulfilment(fulfilment_request("ORD-2", ("1", TEE, 1)))
    again, created_again = await wms.request_fulfilment_outcome(fulfilment_request("ORD-1"))

    assert (first.fulfilment_id, second.fulfilment_id) == ("FUL-000001", "FUL-000002")
    assert (created, created_again) == (True, False)
    assert again == first
    assert first.state is FulfilmentState.RELEASED
    assert [(line.line_id, line.shipped_quantity) for line in first.lines] == [("1", 0), ("2", 0)]
    assert await wms.get_fulfilment("FUL-000001") == first
    assert await wms.get_fulfilment("FUL-999999") is None
    released = await events(wms, "wms.fulfilment.released")
    assert [(e["subject"], e["order_reference"]) for e in released] == [
        ("fulfilment/FUL-000001", "ORD-1"),
        ("fulfilment/FUL-000002", "ORD-2"),
    ]


async def test_concurrent_requests_for_one_order_release_one_fulfilment(wms: EmbeddedWms) -> None:
    results = await asyncio.gather(
        *(wms.request_fulfilment(fulfilment_request("ORD-RACE")) for _ in range(6))
    )

    assert {r.fulfilment_id for r in results} == {"FUL-000001"}
    assert len(await rows(wms, wms_fulfilments)) == 1
    next_one = await wms.request_fulfilment(fulfilment_request("ORD-NEXT"))
    assert next_one.fulfilment_id == "FUL-000002"  # the losers' numbers were given back


async def test_fulfilment_from_an_unknown_warehouse_is_not_found(wms: EmbeddedWms) -> None:
    with pytest.raises(DocumentNotFound, match="NO-SUCH"):
        await wms.request_fulfilment(fulfilment_request("ORD-1", warehouse="NO-SUCH"))
    assert await rows(wms, wms_fulfilments) == []


async def test_partial_shipment_consumes_stock_and_leaves_the_fulfilment_partially_shipped(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment = await wms.request_fulfilment(fulfilment_request())

    shipped = await wms.confirm_shipment(
        fulfilment.fulfilment_id, shipment(package("PKG-1", ("1", MUG, 2), ("2", TEE, 2)))
    )

    assert shipped.state is FulfilmentState.PARTIALLY_SHIPPED
    assert shipped.completed_at is None
    assert [(line.line_id, line.shipped_quantity) for line in shipped.lines] == [("1", 2), ("2", 2)]
    assert shipped.packages == [package("PKG-1", ("1", MUG, 2), ("2", TEE, 2))]
    assert (await on_hand(wms), await on_hand(wms, TEE)) == (8, 8)
    assert (await ledger(wms))[-1] == ("on_hand", -2, "shipment", "FUL-000001/PKG-1")
    confirmed = await events(wms, "wms.shipment.confirmed")
    assert len(confirmed) == 1
    assert confirmed[0]["state"] == "partially_shipped"
    assert [p["package_reference"] for p in confirmed[0]["packages"]] == ["PKG-1"]
    await assert_ledger_explains_stock(wms)


async def test_shipping_every_unit_completes_the_fulfilment(
    wms: EmbeddedWms, clock: ManualClock
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id

    await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("1", MUG, 1))))
    done = await wms.confirm_shipment(
        fulfilment_id,
        shipment(
            package("PKG-2", ("1", MUG, 2)),
            package("PKG-3", ("2", TEE, 2), tracking="T-3"),
        ),
    )

    assert done.state is FulfilmentState.SHIPPED
    assert done.completed_at == clock.now()
    assert [p.package_reference for p in done.packages] == ["PKG-1", "PKG-2", "PKG-3"]
    assert (await on_hand(wms), await on_hand(wms, TEE)) == (7, 8)


async def test_complete_closes_a_fulfilment_with_units_left_unshipped(wms: EmbeddedWms) -> None:
    await receive(wms, 10)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id

    closed = await wms.confirm_shipment(
        fulfilment_id, shipment(package("PKG-1", ("1", MUG, 1)), complete=True)
    )

    assert closed.state is FulfilmentState.SHIPPED
    assert closed.completed_at is not None
    assert [line.shipped_quantity for line in closed.lines] == [1, 0]
    assert await on_hand(wms) == 9


async def test_a_package_confirmed_again_while_open_is_corrected_not_duplicated(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    await wms.confirm_shipment(
        fulfilment_id, shipment(package("PKG-1", ("1", MUG, 2), ("2", TEE, 1)))
    )

    corrected = await wms.confirm_shipment(
        fulfilment_id,
        shipment(package("PKG-1", ("1", MUG, 1), carrier="ups", tracking="1Z-9")),
    )
    twice = await wms.confirm_shipment(
        fulfilment_id, shipment(package("PKG-1", ("1", MUG, 3), ("2", TEE, 1), carrier="ups"))
    )

    assert corrected.packages == [package("PKG-1", ("1", MUG, 1), carrier="ups", tracking="1Z-9")]
    assert [line.shipped_quantity for line in corrected.lines] == [1, 0]
    assert corrected.state is FulfilmentState.PARTIALLY_SHIPPED
    assert len(twice.packages) == 1
    assert [line.shipped_quantity for line in twice.lines] == [3, 1]
    assert (await on_hand(wms), await on_hand(wms, TEE)) == (7, 9)
    assert [e for e in await ledger(wms) if e[2] != "receipt"] == [
        ("on_hand", -2, "shipment", "FUL-000001/PKG-1"),
        ("on_hand", 2, "shipment_correction", "FUL-000001#1/PKG-1"),
        ("on_hand", -1, "shipment", "FUL-000001#1/PKG-1"),
        ("on_hand", 1, "shipment_correction", "FUL-000001#2/PKG-1"),
        ("on_hand", -3, "shipment", "FUL-000001#2/PKG-1"),
    ]
    assert [e for e in await ledger(wms, TEE) if e[2] != "receipt"] == [
        ("on_hand", -1, "shipment", "FUL-000001/PKG-1"),
        ("on_hand", 1, "shipment_correction", "FUL-000001#1/PKG-1"),
        ("on_hand", -1, "shipment", "FUL-000001#2/PKG-1"),
    ]
    assert len(await events(wms, "wms.shipment.confirmed")) == 3
    await assert_ledger_explains_stock(wms)


async def test_the_same_package_again_while_open_changes_nothing(wms: EmbeddedWms) -> None:
    await receive(wms, 10)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    confirmation = shipment(package("PKG-1", ("1", MUG, 2)))
    first = await wms.confirm_shipment(fulfilment_id, confirmation)

    again = await wms.confirm_shipment(fulfilment_id, confirmation)

    assert again == first
    assert await on_hand(wms) == 8
    assert len(await ledger(wms)) == 2
    assert len(await events(wms, "wms.shipment.confirmed")) == 1


async def test_a_package_after_completion_is_refused_and_nothing_is_duplicated(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    final = await wms.confirm_shipment(
        fulfilment_id, shipment(package("PKG-1", ("1", MUG, 3), ("2", TEE, 2)))
    )
    ledger_before = await ledger_count(wms)

    for late in (
        shipment(package("PKG-1", ("1", MUG, 3), ("2", TEE, 2))),  # the same, resent
        shipment(package("PKG-1", ("1", MUG, 1), carrier="ups")),  # a correction
        shipment(package("PKG-9", ("1", MUG, 1)), complete=True),  # a new package
    ):
        with pytest.raises(PackageAfterCompletion) as refused:
            await wms.confirm_shipment(fulfilment_id, late)
        assert refused.value.extensions["fulfilment_id"] == fulfilment_id

    assert await wms.get_fulfilment(fulfilment_id) == final
    assert len(await rows(wms, wms_packages)) == 1
    assert len(await rows(wms, wms_package_lines)) == 2
    assert await ledger_count(wms) == ledger_before
    assert (await on_hand(wms), await on_hand(wms, TEE)) == (7, 8)
    assert len(await events(wms, "wms.shipment.confirmed")) == 1


async def test_more_units_than_ordered_are_refused_and_the_whole_confirmation_rolls_back(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("1", MUG, 2))))

    with pytest.raises(QuantityExceeded, match="line '1'"):
        await wms.confirm_shipment(
            fulfilment_id,
            shipment(package("PKG-2", ("2", TEE, 1)), package("PKG-3", ("1", MUG, 2))),
        )

    fulfilment = await wms.get_fulfilment(fulfilment_id)
    assert fulfilment is not None
    assert [p.package_reference for p in fulfilment.packages] == ["PKG-1"]
    assert [line.shipped_quantity for line in fulfilment.lines] == [2, 0]
    assert (await on_hand(wms), await on_hand(wms, TEE)) == (8, 10)


async def test_a_correction_may_move_units_between_packages_in_one_confirmation(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("1", MUG, 3))))

    moved = await wms.confirm_shipment(
        fulfilment_id,
        shipment(package("PKG-1", ("1", MUG, 1)), package("PKG-2", ("1", MUG, 2))),
    )

    assert [line.shipped_quantity for line in moved.lines] == [3, 0]
    assert await on_hand(wms) == 7
    await assert_ledger_explains_stock(wms)


@pytest.mark.parametrize(
    ("line", "expected"),
    [(("9", MUG, 1), "does not have"), (("1", TEE, 1), "which is")],
)
async def test_an_unknown_line_or_another_sku_is_refused(
    wms: EmbeddedWms, line: tuple[str, str, int], expected: str
) -> None:
    await receive(wms, 10)
    await receive(wms, 10, sku=TEE)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id

    with pytest.raises(InvalidDocumentState, match=expected):
        await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", line)))
    with pytest.raises(InvalidDocumentState, match="twice"):
        await wms.confirm_shipment(
            fulfilment_id, shipment(package("PKG-1", ("1", MUG, 1), ("1", MUG, 1)))
        )
    assert await rows(wms, wms_packages) == []


async def test_shipping_more_than_on_hand_is_refused(wms: EmbeddedWms) -> None:
    await receive(wms, 1)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id

    with pytest.raises(InvalidDocumentState, match="not enough"):
        await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("1", MUG, 2))))
    with pytest.raises(InvalidDocumentState, match="not enough"):
        await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("2", TEE, 1))))

    assert await on_hand(wms) == 1
    assert await wms.stock_levels(sku=TEE) == []
    fulfilment = await wms.get_fulfilment(fulfilment_id)
    assert fulfilment is not None and fulfilment.state is FulfilmentState.RELEASED


async def test_shipment_of_an_unknown_fulfilment_is_not_found(wms: EmbeddedWms) -> None:
    with pytest.raises(DocumentNotFound, match="FUL-000404"):
        await wms.confirm_shipment("FUL-000404", shipment(package("PKG-1", ("1", MUG, 1))))


async def test_a_long_package_reference_is_kept_whole_and_keyed_by_digest_in_the_ledger(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 10)
    fulfilment_id = (await wms.request_fulfilment(fulfilment_request())).fulfilment_id
    reference = "P" * 128

    await wms.confirm_shipment(fulfilment_id, shipment(package(reference, ("1", MUG, 1))))
    fulfilment = await wms.confirm_shipment(
        fulfilment_id, shipment(package(reference, ("1", MUG, 2)))
    )

    assert [p.package_reference for p in fulfilment.packages] == [reference]
    shipments = [e for e in await ledger(wms) if e[2] != "receipt"]
    assert all(len(e[3]) <= 128 and "sha256:" in e[3] for e in shipments)
    assert await on_hand(wms) == 8
    await assert_ledger_explains_stock(wms)


# ---------------------------------------------------------------- returns


def receipt_request(
    rma: str = "RMA-1", *lines: tuple[str, str, int], warehouse: str = "WH-1"
) -> ReturnReceiptRequest:
    items = lines or (("1", MUG, 3),)
    return ReturnReceiptRequest(
        rma_reference=rma,
        order_reference="ORD-1",
        warehouse=warehouse,
        lines=[ReturnReceiptLineIn(line_id=i, sku=sku, quantity=q) for i, sku, q in items],
    )


def inspected(
    line_id: str,
    quantity: int,
    disposition: Disposition,
    grade: InspectionGrade = InspectionGrade.RESELLABLE,
    sku: str = MUG,
) -> InspectionLine:
    return InspectionLine(
        line_id=line_id, sku=sku, quantity=quantity, grade=grade, disposition=disposition
    )


async def test_returned_goods_are_received_once_per_rma_and_not_yet_sellable(
    wms: EmbeddedWms, clock: ManualClock
) -> None:
    receipt, created = await wms.receive_return_outcome(receipt_request("RMA-1"))
    second = await wms.receive_return(receipt_request("RMA-2"))
    again, created_again = await wms.receive_return_outcome(receipt_request("RMA-1"))

    assert (receipt.receipt_id, second.receipt_id) == ("RCV-000001", "RCV-000002")
    assert (created, created_again) == (True, False)
    assert again == receipt
    assert receipt.received_at == clock.now()
    assert await wms.stock_levels() == []
    assert await rows(wms, wms_ledger) == []
    assert [e["rma_reference"] for e in await events(wms, "wms.return.received")] == [
        "RMA-1",
        "RMA-2",
    ]


async def test_return_to_an_unknown_warehouse_is_not_found(wms: EmbeddedWms) -> None:
    with pytest.raises(DocumentNotFound):
        await wms.receive_return(receipt_request("RMA-1", warehouse="NO-SUCH"))
    assert await rows(wms, wms_return_receipts) == []


async def test_inspection_restocks_resellable_units_and_quarantines_or_scraps_the_rest(
    wms: EmbeddedWms,
) -> None:
    await receive(wms, 2)
    await wms.receive_return(receipt_request("RMA-1", ("1", MUG, 4), ("2", TEE, 2)))

    record = await wms.record_inspection(
        "RMA-1",
        InspectionRequest(
            lines=[
                inspected("1", 2, Disposition.RESTOCK),
                inspected("1", 1, Disposition.QUARANTINE, InspectionGrade.DAMAGED),
                inspected("1", 1, Disposition.SCRAP, InspectionGrade.DAMAGED),
                inspected("2", 2, Disposition.SCRAP, InspectionGrade.MISSING, sku=TEE),
            ]
        ),
    )

    assert record.warehouse == "WH-1"
    assert len(record.lines) == 4
    assert await wms.stock_levels() == [StockLevel(sku=MUG, warehouse="WH-1", on_hand=4)]
    stock = await rows(wms, wms_stock)
    assert [(s.sku, s.on_hand, s.quarantined) for s in stock] == [(MUG, 4, 1)]
    assert sorted(e for e in await ledger(wms) if e[2] != "receipt") == [
        ("on_hand", 2, "return_restock", "RMA-1"),
        ("quarantined", 1, "return_quarantine", "RMA-1"),
        ("scrapped", 1, "return_scrap", "RMA-1"),
    ]
    assert await ledger(wms, TEE) == [("scrapped", 2, "return_scrap", "RMA-1")]
    assert [e["subject"] for e in await events(wms, "wms.return.inspected")] == ["return/RMA-1"]
    await assert_ledger_explains_stock(wms)


async def test_damaged_goods_are_never_sellable(wms: EmbeddedWms) -> None:
    await receive(wms, 5)
    await wms.adjust_stock(adjustment(AdjustmentReason.DAMAGE, "DMG-1", delta=-2))
    await wms.receive_return(receipt_request("RMA-1", ("1", MUG, 3)))
    await wms.record_inspection(
        "RMA-1",
        InspectionRequest(
            lines=[
                inspected("1", 2, Disposition.QUARANTINE, InspectionGrade.DAMAGED),
                inspected("1", 1, Disposition.SCRAP, InspectionGrade.DAMAGED),
            ]
        ),
    )

    assert await on_hand(wms) == 3
    assert await wms.ledger_on_hand(MUG, "WH-1") == 3
    with pytest.raises(ValidationError, match="cannot have disposition restock"):
        inspected("1", 1, Disposition.RESTOCK, InspectionGrade.DAMAGED)
    fulfilment_id = (
        await wms.request_fulfilment(fulfilment_request("ORD-9", ("1", MUG, 5)))
    ).fulfilment_id
    with pytest.raises(InvalidDocumentState, match="not enough"):
        await wms.confirm_shipment(fulfilment_id, shipment(package("PKG-1", ("1", MUG, 4))))


async def test_inspection_without_a_receipt_is_not_found(wms: EmbeddedWms) -> None:
    with pytest.raises(DocumentNotFound, match="RMA-404"):
        await wms.record_inspection(
            "RMA-404", InspectionRequest(lines=[inspected("1", 1, Disposition.RESTOCK)])
        )


async def test_inspecting_more_units_than_received_is_refused_and_changes_nothing(
    wms: EmbeddedWms,
) -> None:
    await wms.receive_return(receipt_request("RMA-1", ("1", MUG, 3)))

    with pytest.raises(QuantityExceeded, match="4 units inspected, 3 received"):
        await wms.record_inspection(
            "RMA-1",
            InspectionRequest(
                lines=[
                    inspected("1", 3, Disposition.RESTOCK),
                    inspected("1", 1, Disposition.SCRAP, InspectionGrade.DAMAGED),
                ]
            ),
        )
    with pytest.raises(InvalidDocumentState, match="line '2'"):
        await wms.record_inspection(
            "RMA-1", InspectionRequest(lines=[inspected("2", 1, Disposition.RESTOCK)])
        )
    with pytest.raises(InvalidDocumentState, match="names"):
        await wms.record_inspection(
            "RMA-1", InspectionRequest(lines=[inspected("1", 1, Disposition.RESTOCK, sku=TEE)])
        )

    assert await wms.stock_levels() == []
    assert await rows(wms, wms_inspections) == []


async def test_an_rma_is_inspected_once(wms: EmbeddedWms, clock: ManualClock) -> None:
    await wms.receive_return(receipt_request("RMA-1", ("1", MUG, 3)))
    request = InspectionRequest(lines=[inspected("1", 3, Disposition.RESTOCK)])
    first, created = await wms.record_inspection_outcome("RMA-1", request)
    clock.advance(timedelta(hours=1))

    again, created_again = await wms.record_inspection_outcome("RMA-1", request)
    with pytest.raises(InvalidDocumentState, match="already inspected"):
        await wms.record_inspection(
            "RMA-1", InspectionRequest(lines=[inspected("1", 2, Disposition.RESTOCK)])
        )

    assert (created, created_again) == (True, False)
    assert again == first
    assert await on_hand(wms) == 3
    assert len(await events(wms, "wms.return.inspected")) == 1


# ---------------------------------------------------------------- the ledger explains on-hand

_WMS_TABLES = (
    wms_package_lines,
    wms_packages,
    wms_fulfilment_lines,
    wms_fulfilments,
    wms_ledger,
    wms_stock,
    wms_inspections,
    wms_return_receipts,
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("receipt"), st.sampled_from([MUG, TEE]), st.integers(1, 20)),
        st.tuples(st.just("damage"), st.sampled_from([MUG, TEE]), st.integers(1, 20)),
        st.tuples(st.just("count"), st.sampled_from([MUG, TEE]), st.integers(0, 30)),
        st.tuples(
            st.just("ship"),
            st.sampled_from(["PKG-A", "PKG-B", "PKG-C"]),
            st.tuples(st.integers(0, 6), st.integers(0, 6)).filter(lambda q: any(q)),
        ),
    ),
    min_size=1,
    max_size=25,
)


def _reset(wms: EmbeddedWms) -> None:
    def clear(uow: Any) -> None:
        for table in _WMS_TABLES:
            uow.conn.execute(delete(table))
        uow.conn.execute(delete(document_sequences).where(document_sequences.c.name.like("wms_%")))
        ensure_warehouse(uow, "WH-1", "Main warehouse")

    wms.store.write_sync(clear)


async def _apply(wms: EmbeddedWms, fulfilment: Fulfilment, step: int, operation: Any) -> None:
    kind, first, second = operation
    try:
        if kind == "receipt":
            await wms.adjust_stock(
                adjustment(AdjustmentReason.RECEIPT, f"R{step}", sku=first, delta=second)
            )
        elif kind == "damage":
            await wms.adjust_stock(
                adjustment(AdjustmentReason.DAMAGE, f"D{step}", sku=first, delta=-second)
            )
        elif kind == "count":
            await wms.adjust_stock(
                adjustment(AdjustmentReason.CYCLE_COUNT, f"C{step}", sku=first, counted=second)
            )
        else:
            pairs = zip((("1", MUG), ("2", TEE)), second, strict=True)
            lines = [(line_id, sku, q) for (line_id, sku), q in pairs if q]
            await wms.confirm_shipment(fulfilment.fulfilment_id, shipment(package(first, *lines)))
    except (InvalidDocumentState, QuantityExceeded):
        pass  # refused as a whole: the invariants must hold all the same


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=operations)
async def test_ledger_sums_to_on_hand_after_any_sequence_of_changes(
    wms: EmbeddedWms, operations: list[Any]
) -> None:
    _reset(wms)
    fulfilment = await wms.request_fulfilment(
        fulfilment_request("ORD-P", ("1", MUG, 1000), ("2", TEE, 1000))
    )
    for step, operation in enumerate(operations):
        await _apply(wms, fulfilment, step, operation)

        await assert_ledger_explains_stock(wms)
        current = await wms.get_fulfilment(fulfilment.fulfilment_id)
        assert current is not None
        for line in current.lines:
            in_packages = sum(
                item.quantity
                for p in current.packages
                for item in p.lines
                if item.line_id == line.line_id
            )
            assert line.shipped_quantity == in_packages
