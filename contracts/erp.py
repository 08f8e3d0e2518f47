"""ERP sales documents as the system API exposes them, whatever ERP sits behind it."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
    ChannelCode,
    ContractModel,
    CurrencyCode,
    Identifier,
    UtcDateTime,
    ensure_unique,
)
from contracts.money import Money
from contracts.order import MAX_ORDER_LINES, LineRejection, OrderLine

__all__ = ["SalesOrder", "SalesOrderDecision", "SalesOrderRequest", "SalesOrderState"]


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
