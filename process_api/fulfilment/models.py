"""What the back half of order-to-cash hands back: releases, shipments, invoices, settlements."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts import Money, Order, OrderStatus, Package, SettlementReport, Shipment, ShipmentLine

SOURCE = "process_api.fulfilment"
RELEASE_TIMER = "fulfilment.release"
"""Timer kind, keyed by order id: release the order to the warehouse once the WMS answers."""
CONFIRM_TIMER = "fulfilment.confirm_shipment"
"""Timer kind, keyed by order id: confirm the order's reported packages with the WMS."""
INVOICE_TIMER = "fulfilment.invoice"
"""Timer kind, keyed by order id: invoice shipped units not yet invoiced."""


class PackageState(StrEnum):
    PENDING = "pending"
    """Reported, waiting for the WMS to confirm it; counts against the ordered quantity."""
    CONFIRMED = "confirmed"
    """Confirmed by the WMS and recorded: its units left the reservation and on-hand."""


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class ReleaseRequest(BaseModel):
    """Release an accepted order to a warehouse."""

    model_config = ConfigDict(extra="forbid")

    warehouse: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Warehouse code; the gateway's default warehouse when absent.",
    )


class Release(BaseModel):
    """An order's release to the warehouse: requested, and released once the WMS answered."""

    order: Order
    warehouse: str
    fulfilment_id: str | None = Field(
        description="The WMS's fulfilment; absent while the WMS has not answered yet."
    )
    requested_at: datetime
    released_at: datetime | None


class OrderShipments(BaseModel):
    """An order's shipments as recorded, and packages still waiting for the WMS."""

    order_id: str
    order_status: OrderStatus
    shipments: list[Shipment] = Field(description="Packages confirmed by the WMS, by shipment.")
    pending_packages: list[Package] = Field(
        description="Packages reported but not yet confirmed by the WMS (retried by a timer)."
    )
    shipped: dict[str, int] = Field(description="Units shipped so far per order line.")


class InvoiceLineView(BaseModel):
    line_id: str
    sku: str
    quantity: int
    unit_price: Money
    amount: Money


class InvoiceView(BaseModel):
    """An ERP document the gateway recorded for an order: an invoice or a credit note."""

    document_id: str = Field(description="The ERP's number, e.g. INV-000007.")
    kind: DocumentKind
    reference: str = Field(description="The reference the ERP posted it under (never twice).")
    total: Money
    lines: list[InvoiceLineView]
    posted_at: datetime


class Invoicing(BaseModel):
    """An order's invoices, and whether shipped units still wait for the ERP."""

    order_id: str
    order_status: OrderStatus
    invoices: list[InvoiceView]
    invoiced: dict[str, int] = Field(description="Units invoiced so far per order line.")
    waiting_for_erp: bool = Field(
        description="Shipped units are not invoiced yet because the ERP did not answer; retried."
    )


class LineOutcome(StrEnum):
    MATCHED = "matched"
    MISMATCH = "mismatch"


class MismatchCode(StrEnum):
    UNKNOWN_ORDER = "unknown_order"
    OTHER_CHANNEL = "other_channel"
    ORDER_REFERENCE_MISMATCH = "order_reference_mismatch"
    DUPLICATE_LINE = "duplicate_line"
    ORDER_NOT_INVOICED = "order_not_invoiced"
    ALREADY_SETTLED = "already_settled"
    CURRENCY_MISMATCH = "currency_mismatch"
    GROSS_MISMATCH = "gross_mismatch"
    REFUNDS_MISMATCH = "refunds_mismatch"


class ReconciledLine(BaseModel):
    """One line of a payout report and what reconciliation made of it."""

    position: int = Field(description="The line's place in the report, from 0.")
    order_id: str | None = Field(description="The gateway order the line belongs to, if known.")
    channel_order_id: str | None
    gross: Money
    fees: Money
    refunds: Money
    net: Money
    invoiced: Money | None = Field(description="Total the ERP invoiced for the order.")
    refunded: Money | None = Field(description="Total credited for the order.")
    outcome: LineOutcome
    code: MismatchCode | None = Field(description="Why the line did not match.")
    detail: str | None
    exception_id: str | None = Field(description="The exception opened for a mismatch.")


class Reconciliation(BaseModel):
    """A payout report as imported, and the reconciliation of each of its lines."""

    channel: str
    payout_id: str
    currency: str
    total_net: Money
    matched: int
    mismatched: int
    imported_at: datetime
    imported_by: str
    lines: list[ReconciledLine]
    report: SettlementReport


class Imported(BaseModel):
    """The reconciliation of a report, and whether this import recorded it."""

    reconciliation: Reconciliation
    created: bool


def package_lines(package: Package) -> list[dict[str, str | int]]:
    return [line.model_dump(mode="json") for line in package.lines]


def same_contents(a: Package, b: Package) -> bool:
    """The same parcel: carrier, tracking number and units per line (in any order)."""

    def key(p: Package) -> tuple[str, str, list[tuple[str, str, int]]]:
        return (
            p.carrier,
            p.tracking_number,
            sorted((line.line_id, line.sku, line.quantity) for line in p.lines),
        )

    return key(a) == key(b)


def to_package(
    reference: str, carrier: str, tracking: str, lines: list[dict[str, object]]
) -> Package:
    return Package(
        package_reference=reference,
        carrier=carrier,
        tracking_number=tracking,
        lines=[ShipmentLine.model_validate(line) for line in lines],
    )
