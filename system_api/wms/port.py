"""The WMS port: what the process layer may ask of the warehouse, whatever WMS serves it."""

from __future__ import annotations

from typing import Protocol

from contracts.wms import (
    Fulfilment,
    FulfilmentRequest,
    InspectionRecord,
    InspectionRequest,
    ReturnReceipt,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustment,
    StockAdjustmentRequest,
    StockLevel,
    Warehouse,
)


class WmsPort(Protocol):
    """Warehouse capabilities; implemented by each backend adapter and by the HTTP client."""

    name: str

    async def list_warehouses(self) -> list[Warehouse]:
        """Every warehouse stock can be held and shipped from."""
        ...

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        """Sellable on-hand per SKU and warehouse (filtered when given), ordered by both."""
        ...

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        """Apply a receipt, damage or cycle count once per reference; emits an event.

        Raises InvalidDocumentState when damage would take on-hand below zero.
        """
        ...

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        """Release an order's lines to a warehouse; the same order reference returns it again."""
        ...

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None: ...

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        """Record shipped packages; a known package reference corrects that package while the
        fulfilment is open and is refused (PackageAfterCompletion) once it is complete."""
        ...

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        """Record returned goods as received (not yet sellable); idempotent by RMA reference."""
        ...

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        """Grade received goods: restocked units become sellable, others are quarantined or
        scrapped and never sellable. Once per RMA."""
        ...
