"""Helpers of the fulfilment tests: stocked warehouses, accepted orders, payloads, backends that
can be taken down, and reads of what the gateway and the embedded ERP/WMS recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select

from contracts import Customer, Product
from contracts.channel import ChannelProfile
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
)
from contracts.refund import CreditNote
from contracts.wms import (
    AdjustmentReason,
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
from gateway import Gateway
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.tables import outbox
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable
from system_api.tables import erp_invoices
from system_api.wms.port import WmsPort
from tests.factories import line, order_payload, product, seed_products

WAREHOUSE = "WH"
SHIPPED_AT = "2026-11-27T10:00:00Z"


async def stock_everything(gateway: Gateway, *products: Product, on_hand: int = 100) -> None:
    """Products in the ERP, counted by the gateway, held by the warehouse; channel profiles."""
    items = list(products) or [product()]
    seed_products(gateway, *items, on_hand=on_hand)
    await gateway.embedded_wms.ensure_warehouse(WAREHOUSE, "Main warehouse")
    for item in items:
        await gateway.embedded_wms.adjust_stock(
            StockAdjustmentRequest(
                sku=item.sku,
                warehouse=WAREHOUSE,
                reason=AdjustmentReason.RECEIPT,
                reference=f"opening-{item.sku}",
                delta=on_hand,
            )
        )
    profiles: list[ChannelProfile] = [
        p.model_copy(update={"throttling_tier": "standard"}) for p in DEMO_CHANNEL_PROFILES
    ]
    await gateway.channels.seed(profiles, actor="test")


async def accepted_order(
    client: httpx.AsyncClient,
    channel_order_id: str,
    *lines: dict[str, Any],
    channel: str = "webshop",
) -> str:
    response = await client.post(
        "/process/v1/orders", json=order_payload(channel_order_id, *lines, channel=channel)
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def released_order(
    client: httpx.AsyncClient,
    channel_order_id: str,
    *lines: dict[str, Any],
    channel: str = "webshop",
) -> str:
    order_id = await accepted_order(client, channel_order_id, *lines, channel=channel)
    response = await client.post(f"/process/v1/orders/{order_id}/release")
    assert response.status_code == 200, response.text
    return order_id


def two_lines() -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        line("1", "MUG-RED-350", quantity=3, price="12.90"),
        line("2", "MUG-BLUE-350", quantity=1, price="9.50"),
    )


def two_products() -> tuple[Product, Product]:
    return product("MUG-RED-350", "12.90"), product("MUG-BLUE-350", "9.50")


def package(reference: str, *items: tuple[str, str, int], tracking: str = "") -> dict[str, Any]:
    return {
        "package_reference": reference,
        "carrier": "dhl",
        "tracking_number": tracking or f"TRK-{reference}",
        "lines": [
            {"line_id": line_id, "sku": sku, "quantity": quantity}
            for line_id, sku, quantity in items
        ],
    }


def shipment(order_id: str, *packages: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "warehouse": WAREHOUSE,
        "packages": list(packages),
        "shipped_at": SHIPPED_AT,
    }


def payout(
    payout_id: str,
    *lines: dict[str, Any],
    channel: str = "webshop",
) -> dict[str, Any]:
    return {
        "channel": channel,
        "payout_id": payout_id,
        "period_start": "2026-11-01T00:00:00Z",
        "period_end": "2026-11-30T00:00:00Z",
        "currency": "EUR",
        "lines": list(lines),
    }


def payout_line(
    *,
    order_id: str | None = None,
    channel_order_id: str | None = None,
    gross: str,
    fees: str = "0.00",
    refunds: str = "0.00",
) -> dict[str, Any]:
    net = Decimal(gross) - Decimal(fees) - Decimal(refunds)
    found: dict[str, Any] = {
        "gross": {"amount": gross, "currency": "EUR"},
        "fees": {"amount": fees, "currency": "EUR"},
        "refunds": {"amount": refunds, "currency": "EUR"},
        "net": {"amount": str(net), "currency": "EUR"},
    }
    if order_id is not None:
        found["order_id"] = order_id
    if channel_order_id is not None:
        found["channel_order_id"] = channel_order_id
    return found


async def events_of(gateway: Gateway, event_type: str) -> list[dict[str, Any]]:
    """Outbox events of a type, oldest first (their envelopes)."""
    rows = await gateway.store.read(
        lambda conn: list(
            conn.execute(
                select(*ENVELOPE_COLUMNS).where(outbox.c.type == event_type).order_by(outbox.c.id)
            )
        )
    )
    return [envelope_of(row) or {} for row in rows]


async def erp_invoice_count(gateway: Gateway, order_id: str) -> int:
    """Invoices the embedded ERP posted for an order (their references start with its id)."""
    count = await gateway.store.read(
        lambda conn: conn.execute(
            select(func.count())
            .select_from(erp_invoices)
            .where(erp_invoices.c.reference.startswith(f"{order_id}/", autoescape=True))
        ).scalar_one()
    )
    return int(count)


def history(order: dict[str, Any]) -> list[str]:
    return [step["to_status"] for step in order["history"]]


class Outage:
    """A switch that takes a backend down: while down, every call is BackendUnavailable."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.down = False
        self.lose_next_answer = False

    def check(self) -> None:
        if self.down:
            raise BackendUnavailable(self.backend, "connection refused")

    def answer(self) -> None:
        """The call went through but its answer is lost on the way back (once, when set)."""
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise BackendUnavailable(self.backend, "read timeout")


class FlakyWms:
    """A WMS port that fails while its outage is on."""

    def __init__(self, inner: WmsPort, outage: Outage) -> None:
        self.inner = inner
        self.outage = outage
        self.name = inner.name

    async def list_warehouses(self) -> list[Warehouse]:
        self.outage.check()
        return await self.inner.list_warehouses()

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        self.outage.check()
        return await self.inner.stock_levels(sku=sku, warehouse=warehouse)

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        self.outage.check()
        return await self.inner.adjust_stock(request)

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        self.outage.check()
        found = await self.inner.request_fulfilment(request)
        self.outage.answer()
        return found

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        self.outage.check()
        return await self.inner.get_fulfilment(fulfilment_id)

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        self.outage.check()
        found = await self.inner.confirm_shipment(fulfilment_id, confirmation)
        self.outage.answer()
        return found

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        self.outage.check()
        return await self.inner.receive_return(request)

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        self.outage.check()
        return await self.inner.record_inspection(rma_reference, request)


class FlakyErp:
    """An ERP port that fails while its outage is on, or loses one answer."""

    def __init__(self, inner: ErpPort, outage: Outage) -> None:
        self.inner = inner
        self.outage = outage
        self.name = inner.name

    async def get_product(self, sku: str) -> Product | None:
        self.outage.check()
        return await self.inner.get_product(sku)

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        self.outage.check()
        return await self.inner.list_products(after=after, limit=limit)

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        self.outage.check()
        return await self.inner.create_sales_order(request)

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        self.outage.check()
        return await self.inner.get_sales_order(sales_order_id)

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        self.outage.check()
        return await self.inner.confirm_sales_order(sales_order_id)

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        self.outage.check()
        return await self.inner.cancel_sales_order(sales_order_id)

    async def get_customer(self, customer_id: str) -> Customer | None:
        self.outage.check()
        return await self.inner.get_customer(customer_id)

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        self.outage.check()
        posted = await self.inner.post_invoice(request)
        self.outage.answer()
        return posted

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self.outage.check()
        return await self.inner.get_invoice(invoice_id)

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        self.outage.check()
        return await self.inner.post_credit_note(request)
