"""WMS conformance: every warehouse adapter behaves the same, checked inside the backend itself."""

from __future__ import annotations

import uuid

import pytest

from contracts import Disposition, InspectionGrade, Package, ShipmentLine
from contracts.wms import (
    AdjustmentReason,
    FulfilmentLine,
    FulfilmentRequest,
    FulfilmentState,
    InspectionLine,
    InspectionRequest,
    ReturnReceiptLineIn,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustmentRequest,
)
from system_api.errors import InvalidDocumentState, PackageAfterCompletion
from tests.system.conformance.backends import WAREHOUSE, BackendUnderTest
from tests.system.conformance.test_erp_conformance import confirmed_order


def ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def receive(backend: BackendUnderTest, sku: str, units: int) -> int:
    adjustment = await backend.wms.adjust_stock(
        StockAdjustmentRequest(
            sku=sku,
            warehouse=WAREHOUSE,
            reason=AdjustmentReason.RECEIPT,
            reference=ref("rcpt"),
            delta=units,
        )
    )
    return adjustment.on_hand


def package(reference: str, *lines: tuple[str, str, int], tracking: str = "TRK-1") -> Package:
    return Package(
        package_reference=reference,
        carrier="dhl",
        tracking_number=tracking,
        lines=[ShipmentLine(line_id=line_id, sku=sku, quantity=qty) for line_id, sku, qty in lines],
    )


async def released(backend: BackendUnderTest, *lines: tuple[str, int, str]) -> str:
    """A confirmed sales order released to the warehouse; returns the fulfilment id."""
    number = await confirmed_order(backend, *lines)
    order = await backend.erp.get_sales_order(number)
    assert order is not None
    fulfilment = await backend.wms.request_fulfilment(
        FulfilmentRequest(
            order_reference=order.reference,
            warehouse=WAREHOUSE,
            lines=[
                FulfilmentLine(line_id=line.line_id, sku=line.sku, quantity=line.quantity)
                for line in order.lines
            ],
        )
    )
    assert fulfilment.state is FulfilmentState.RELEASED
    return fulfilment.fulfilment_id


async def test_the_warehouse_is_known(backend: BackendUnderTest) -> None:
    assert WAREHOUSE in {w.code for w in await backend.wms.list_warehouses()}


async def test_a_receipt_adds_stock_once_per_reference(backend: BackendUnderTest) -> None:
    before = backend.probe.on_hand("TEE-ORG-M", WAREHOUSE)
    request = StockAdjustmentRequest(
        sku="TEE-ORG-M",
        warehouse=WAREHOUSE,
        reason=AdjustmentReason.RECEIPT,
        reference=ref("r"),
        delta=7,
    )

    first = await backend.wms.adjust_stock(request)
    again = await backend.wms.adjust_stock(request)

    assert first.on_hand == again.on_hand == before + 7
    assert backend.probe.on_hand("TEE-ORG-M", WAREHOUSE) == before + 7
    levels = await backend.wms.stock_levels(sku="TEE-ORG-M", warehouse=WAREHOUSE)
    assert [(lv.sku, lv.warehouse, lv.on_hand) for lv in levels] == [
        ("TEE-ORG-M", WAREHOUSE, before + 7)
    ]


async def test_damage_cannot_take_stock_below_zero(backend: BackendUnderTest) -> None:
    on_hand = await receive(backend, "LAMP-DESK-01", 2)

    with pytest.raises(InvalidDocumentState):
        await backend.wms.adjust_stock(
            StockAdjustmentRequest(
                sku="LAMP-DESK-01",
                warehouse=WAREHOUSE,
                reason=AdjustmentReason.DAMAGE,
                reference=ref("dmg"),
                delta=-(on_hand + 1),
            )
        )

    assert backend.probe.on_hand("LAMP-DESK-01", WAREHOUSE) == on_hand


async def test_a_cycle_count_sets_the_counted_quantity(backend: BackendUnderTest) -> None:
    await receive(backend, "MUG-RED-350", 5)

    counted = await backend.wms.adjust_stock(
        StockAdjustmentRequest(
            sku="MUG-RED-350",
            warehouse=WAREHOUSE,
            reason=AdjustmentReason.CYCLE_COUNT,
            reference=ref("cc"),
            counted=3,
        )
    )

    assert counted.on_hand == 3
    assert backend.probe.on_hand("MUG-RED-350", WAREHOUSE) == 3


async def test_releasing_an_order_twice_gives_one_fulfilment(backend: BackendUnderTest) -> None:
    number = await confirmed_order(backend, ("MUG-RED-350", 1, "12.90"))
    order = await backend.erp.get_sales_order(number)
    assert order is not None
    request = FulfilmentRequest(
        order_reference=order.reference,
        warehouse=WAREHOUSE,
        lines=[FulfilmentLine(line_id="1", sku="MUG-RED-350", quantity=1)],
    )

    first = await backend.wms.request_fulfilment(request)
    second = await backend.wms.request_fulfilment(request)

    assert first.fulfilment_id == second.fulfilment_id


async def test_a_partial_shipment_consumes_stock_and_leaves_the_rest_open(
    backend: BackendUnderTest,
) -> None:
    on_hand = await receive(backend, "MUG-RED-350", 10)
    fulfilment_id = await released(backend, ("MUG-RED-350", 3, "12.90"))

    fulfilment = await backend.wms.confirm_shipment(
        fulfilment_id, ShipmentConfirmation(packages=[package("P1", ("1", "MUG-RED-350", 2))])
    )

    assert fulfilment.state is FulfilmentState.PARTIALLY_SHIPPED
    assert fulfilment.lines[0].shipped_quantity == 2
    assert backend.probe.on_hand("MUG-RED-350", WAREHOUSE) == on_hand - 2
    assert backend.probe.package_references(fulfilment_id) == ["P1"]


async def test_the_same_package_again_corrects_it_while_the_fulfilment_is_open(
    backend: BackendUnderTest,
) -> None:
    on_hand = await receive(backend, "MUG-RED-350", 10)
    fulfilment_id = await released(backend, ("MUG-RED-350", 3, "12.90"))
    await backend.wms.confirm_shipment(
        fulfilment_id, ShipmentConfirmation(packages=[package("P1", ("1", "MUG-RED-350", 2))])
    )

    corrected = await backend.wms.confirm_shipment(
        fulfilment_id,
        ShipmentConfirmation(packages=[package("P1", ("1", "MUG-RED-350", 1), tracking="TRK-2")]),
    )

    assert corrected.lines[0].shipped_quantity == 1
    assert [p.tracking_number for p in corrected.packages] == ["TRK-2"]
    assert backend.probe.package_references(fulfilment_id) == ["P1"]
    assert backend.probe.on_hand("MUG-RED-350", WAREHOUSE) == on_hand - 1


async def test_a_package_sent_again_after_completion_is_refused_and_never_duplicated(
    backend: BackendUnderTest,
) -> None:
    on_hand = await receive(backend, "TEE-ORG-M", 5)
    fulfilment_id = await released(backend, ("TEE-ORG-M", 2, "24.00"))
    done = await backend.wms.confirm_shipment(
        fulfilment_id,
        ShipmentConfirmation(packages=[package("P1", ("1", "TEE-ORG-M", 2))], complete=True),
    )

    with pytest.raises(PackageAfterCompletion):
        await backend.wms.confirm_shipment(
            fulfilment_id, ShipmentConfirmation(packages=[package("P1", ("1", "TEE-ORG-M", 2))])
        )

    assert done.state is FulfilmentState.SHIPPED
    assert backend.probe.package_references(fulfilment_id) == ["P1"]
    assert backend.probe.on_hand("TEE-ORG-M", WAREHOUSE) == on_hand - 2


async def test_returned_goods_are_sellable_only_once_inspected_resellable(
    backend: BackendUnderTest,
) -> None:
    await receive(backend, "LAMP-DESK-01", 4)
    fulfilment_id = await released(backend, ("LAMP-DESK-01", 2, "59.00"))
    shipped = await backend.wms.confirm_shipment(
        fulfilment_id,
        ShipmentConfirmation(packages=[package("P1", ("1", "LAMP-DESK-01", 2))], complete=True),
    )
    after_shipping = backend.probe.on_hand("LAMP-DESK-01", WAREHOUSE)
    rma = ref("rma")

    receipt = await backend.wms.receive_return(
        ReturnReceiptRequest(
            rma_reference=rma,
            order_reference=shipped.order_reference,
            warehouse=WAREHOUSE,
            lines=[ReturnReceiptLineIn(line_id="1", sku="LAMP-DESK-01", quantity=2)],
        )
    )
    assert backend.probe.on_hand("LAMP-DESK-01", WAREHOUSE) == after_shipping  # not yet sellable

    inspection = await backend.wms.record_inspection(
        rma,
        InspectionRequest(
            lines=[
                InspectionLine(
                    line_id="1",
                    sku="LAMP-DESK-01",
                    grade=InspectionGrade.RESELLABLE,
                    disposition=Disposition.RESTOCK,
                    quantity=1,
                ),
                InspectionLine(
                    line_id="1",
                    sku="LAMP-DESK-01",
                    grade=InspectionGrade.DAMAGED,
                    disposition=Disposition.QUARANTINE,
                    quantity=1,
                ),
            ]
        ),
    )

    assert receipt.rma_reference == inspection.rma_reference == rma
    assert backend.probe.on_hand("LAMP-DESK-01", WAREHOUSE) == after_shipping + 1
