"""ERP and WMS ports that ask the ownership policy before every write they pass on.

The gateway wraps whichever adapter serves a system (embedded, Tryton, HTTP), so the rule holds
for in-process callers and for the system API's routes alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from contracts import CreditNote, Customer, Product
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
)
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
from system_api.erp.port import ErpPort
from system_api.ownership import OwnershipPolicy
from system_api.wms.port import WmsPort

Fields = tuple[tuple[str, tuple[str, ...]], ...]

STOCK: Fields = (("inventory", ("on_hand",)),)
FULFILMENT: Fields = (("fulfilment", ("lines",)),)
SHIPMENT: Fields = (("shipment", ("packages",)), ("inventory", ("on_hand",)))
RECEIPT: Fields = (("return", ("receipt",)),)
INSPECTION: Fields = (("return", ("inspection",)), ("inventory", ("on_hand", "quarantined")))
# Variants some adapters offer that also tell whether the call created the document.
_WMS_OUTCOMES: dict[str, Fields] = {
    "adjust_stock_outcome": STOCK,
    "request_fulfilment_outcome": FULFILMENT,
    "receive_return_outcome": RECEIPT,
    "record_inspection_outcome": INSPECTION,
}


async def _require(policy: OwnershipPolicy, system: str, fields: Fields) -> None:
    for obj, names in fields:
        await policy.require(system, obj, *names)


class OwnedErp:
    """ErpPort whose writes are checked against the system-of-record map (system: erp)."""

    def __init__(self, inner: ErpPort, policy: OwnershipPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self.name = inner.name

    async def _write(self, fields: Fields, call: Callable[[], Awaitable[Any]]) -> Any:
        await _require(self.policy, "erp", fields)
        return await call()

    async def get_product(self, sku: str) -> Product | None:
        return await self.inner.get_product(sku)

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        return await self.inner.list_products(after=after, limit=limit)

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        fields: Fields = (("sales_order", ("lines",)),)
        if request.customer is not None:
            fields += (("customer", ("name", "email", "phone", "address")),)
        decision: SalesOrderDecision = await self._write(
            fields, lambda: self.inner.create_sales_order(request)
        )
        return decision

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        return await self.inner.get_sales_order(sales_order_id)

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        order: SalesOrder = await self._write(
            (("sales_order", ("state",)),), lambda: self.inner.confirm_sales_order(sales_order_id)
        )
        return order

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        order: SalesOrder = await self._write(
            (("sales_order", ("state",)),), lambda: self.inner.cancel_sales_order(sales_order_id)
        )
        return order

    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self.inner.get_customer(customer_id)

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        invoice: Invoice = await self._write(
            (("invoice", ("lines",)),), lambda: self.inner.post_invoice(request)
        )
        return invoice

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        return await self.inner.get_invoice(invoice_id)

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        credit: CreditNote = await self._write(
            (("credit_note", ("lines",)),), lambda: self.inner.post_credit_note(request)
        )
        return credit


class OwnedWms:
    """WmsPort whose writes are checked against the system-of-record map (system: wms)."""

    def __init__(self, inner: WmsPort, policy: OwnershipPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self.name = inner.name

    def __getattr__(self, attribute: str) -> Any:
        # Optional adapter extras (e.g. *_outcome variants), checked like the port's writes.
        target = getattr(self.inner, attribute)
        fields = _WMS_OUTCOMES.get(attribute)
        if fields is None:
            return target

        async def checked(*args: Any, **kwargs: Any) -> Any:
            await _require(self.policy, "wms", fields)
            return await target(*args, **kwargs)

        return checked

    async def _write(self, fields: Fields, call: Callable[[], Awaitable[Any]]) -> Any:
        await _require(self.policy, "wms", fields)
        return await call()

    async def list_warehouses(self) -> list[Warehouse]:
        return await self.inner.list_warehouses()

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        return await self.inner.stock_levels(sku=sku, warehouse=warehouse)

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        adjustment: StockAdjustment = await self._write(
            STOCK, lambda: self.inner.adjust_stock(request)
        )
        return adjustment

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        fulfilment: Fulfilment = await self._write(
            FULFILMENT, lambda: self.inner.request_fulfilment(request)
        )
        return fulfilment

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        return await self.inner.get_fulfilment(fulfilment_id)

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        fulfilment: Fulfilment = await self._write(
            SHIPMENT, lambda: self.inner.confirm_shipment(fulfilment_id, confirmation)
        )
        return fulfilment

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        receipt: ReturnReceipt = await self._write(
            RECEIPT, lambda: self.inner.receive_return(request)
        )
        return receipt

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        record: InspectionRecord = await self._write(
            INSPECTION, lambda: self.inner.record_inspection(rma_reference, request)
        )
        return record
