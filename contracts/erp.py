"""ERP sales documents as the system API exposes them, whatever ERP sits behind it."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
    ChannelCode,
    ContractModel,
    CurrencyCode,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_unique,
)
from contracts.customer import Customer
from contracts.money import Money
from contracts.order import MAX_ORDER_LINES, LineRejection, OrderLine
from contracts.refund import CreditNoteLine

__all__ = [
    "CreditNoteRequest",
    "Invoice",
    "InvoiceLine",
    "InvoiceLineRequest",
    "InvoiceRequest",
    "SalesOrder",
    "SalesOrderDecision",
    "SalesOrderRequest",
    "SalesOrderState",
]


class SalesOrderState(StrEnum):
    """State of a sales order in the ERP."""

    QUOTATION = "quotation"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class SalesOrderRequest(ContractModel):
    """Ask the ERP to validate lines against its item master and price list and record them."""

    reference: Identifier = Field(
        description="The gateway's order id; the ERP keeps one sales order per reference."
    )
    channel: ChannelCode = Field(description="Sales channel the order came from.")
    currency: CurrencyCode = Field(description="Currency of every line price.")
    customer: Customer | None = Field(
        default=None, description="The buyer; the ERP records or reuses a party for it."
    )
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class SalesOrder(ContractModel):
    """A sales order as recorded by the ERP, numbered the ERP's way."""

    sales_order_id: Identifier = Field(description="The ERP's document number, e.g. SO-000042.")
    reference: Identifier = Field(description="The gateway's order id.")
    channel: ChannelCode
    state: SalesOrderState
    currency: CurrencyCode
    customer_id: Identifier | None = Field(
        default=None, description="The ERP's party for the buyer, when one was given."
    )
    lines: list[OrderLine]
    total: Money
    created_at: UtcDateTime


class SalesOrderDecision(ContractModel):
    """The ERP's answer: the recorded sales order, or the reasons per rejected line."""

    accepted: bool
    sales_order: SalesOrder | None = None
    rejections: list[LineRejection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.accepted and (self.sales_order is None or self.rejections):
            raise ValueError("an accepted decision carries the sales order and no rejections")
        if not self.accepted and not self.rejections:
            raise ValueError("a rejected decision lists at least one line rejection")
        return self


class InvoiceLineRequest(ContractModel):
    """Units of one sales order line to invoice (shipped units)."""

    line_id: LineId
    quantity: Quantity


class InvoiceRequest(ContractModel):
    """Post an invoice for shipped quantities of a confirmed sales order.

    Idempotent by `reference` (e.g. the shipment it bills): the same reference returns the
    invoice already posted. No line may be invoiced beyond its ordered quantity.
    """

    sales_order_id: Identifier
    reference: Identifier = Field(description="What this invoice bills, e.g. a shipment id.")
    lines: list[InvoiceLineRequest] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class InvoiceLine(ContractModel):
    line_id: LineId
    sku: Sku
    quantity: Quantity
    unit_price: Money
    amount: Money


class Invoice(ContractModel):
    """A posted customer invoice, numbered by the ERP."""

    invoice_id: Identifier = Field(description="The ERP's invoice number, e.g. INV-000007.")
    sales_order_id: Identifier
    reference: Identifier
    currency: CurrencyCode
    lines: list[InvoiceLine]
    total: Money
    posted_at: UtcDateTime


class CreditNoteRequest(ContractModel):
    """Credit (part of) a posted invoice, e.g. for a refund. Idempotent by `reference`."""

    invoice_id: Identifier
    reference: Identifier = Field(description="What this credit settles, e.g. a return id.")
    lines: list[CreditNoteLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        currencies = {line.amount.currency for line in self.lines}
        if len(currencies) > 1:
            raise ValueError("all credited amounts must be in one currency")
        return self
