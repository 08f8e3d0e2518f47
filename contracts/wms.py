"""Warehouse documents as the system API exposes them, whatever WMS sits behind it."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
    ContractModel,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_unique,
)
from contracts.order import MAX_ORDER_LINES
from contracts.returns import InspectionResult
from contracts.shipment import Package

__all__ = [
    "AdjustmentReason",
    "Fulfilment",
    "FulfilmentLine",
    "FulfilmentRequest",
    "FulfilmentState",
    "InspectionLine",
    "InspectionRecord",
    "InspectionRequest",
    "ReturnReceipt",
    "ReturnReceiptLineIn",
    "ReturnReceiptRequest",
    "ShipmentConfirmation",
    "StockAdjustment",
    "StockAdjustmentRequest",
    "StockLevel",
    "Warehouse",
]


class Warehouse(ContractModel):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=200)


class StockLevel(ContractModel):
    """Sellable units of a SKU on hand in one warehouse, as the WMS counts them."""

    sku: Sku
    warehouse: str
    on_hand: int = Field(ge=0)


class AdjustmentReason(StrEnum):
    """Why the WMS changed a count."""

    CYCLE_COUNT = "cycle_count"
    RECEIPT = "receipt"
    DAMAGE = "damage"


class StockAdjustmentRequest(ContractModel):
    """A change of on-hand: a delta (receipt, damage) or a counted quantity (cycle count).

    Idempotent by `reference`: the same reference for the same SKU and warehouse is applied once.
    """

    sku: Sku
    warehouse: str = Field(min_length=1, max_length=64)
    reason: AdjustmentReason
    reference: Identifier = Field(description="The WMS document behind the change.")
    delta: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    counted: int | None = Field(default=None, ge=0, le=100_000_000)

    @model_validator(mode="after")
    def _delta_or_count(self) -> Self:
        if self.reason is AdjustmentReason.CYCLE_COUNT:
            if self.counted is None or self.delta is not None:
                raise ValueError("a cycle count gives `counted` (and no `delta`)")
        elif self.delta is None or self.counted is not None or self.delta == 0:
            raise ValueError("a receipt or damage gives a non-zero `delta` (and no `counted`)")
        if self.reason is AdjustmentReason.RECEIPT and (self.delta or 0) < 0:
            raise ValueError("a receipt adds stock: `delta` must be positive")
        if self.reason is AdjustmentReason.DAMAGE and (self.delta or 0) > 0:
            raise ValueError("damage removes stock: `delta` must be negative")
        return self


class StockAdjustment(ContractModel):
    """An applied change of on-hand, with the level it left."""

    sku: Sku
    warehouse: str
    reason: AdjustmentReason
    reference: Identifier
    delta: int
    on_hand: int = Field(ge=0, description="On-hand after the change.")
    at: UtcDateTime


class FulfilmentLine(ContractModel):
    line_id: LineId
    sku: Sku
    quantity: Quantity
    shipped_quantity: int = Field(default=0, ge=0)


class FulfilmentRequest(ContractModel):
    """Release an order's lines to a warehouse for picking. Idempotent by order_reference."""

    order_reference: Identifier = Field(description="The gateway's order id.")
    warehouse: str = Field(min_length=1, max_length=64)
    lines: list[FulfilmentLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        if any(line.shipped_quantity for line in self.lines):
            raise ValueError("a new fulfilment has nothing shipped yet")
        return self


class FulfilmentState(StrEnum):
    RELEASED = "released"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class Fulfilment(ContractModel):
    """A warehouse's work for one order: lines, packages shipped so far, and its state."""

    fulfilment_id: Identifier
    order_reference: Identifier
    warehouse: str
    state: FulfilmentState
    lines: list[FulfilmentLine]
    packages: list[Package] = Field(default_factory=list)
    completed_at: UtcDateTime | None = None


class ShipmentConfirmation(ContractModel):
    """Packages the warehouse shipped for a fulfilment.

    A package reference already confirmed replaces that package while the fulfilment is not
    complete (a correction); after completion it is refused, never duplicated. `complete` closes
    the fulfilment (nothing more will ship; unshipped units are released).
    """

    packages: list[Package] = Field(min_length=1, max_length=500)
    complete: bool = False

    @model_validator(mode="after")
    def _unique_packages(self) -> Self:
        ensure_unique((p.package_reference for p in self.packages), "package_reference")
        return self


class ReturnReceiptLineIn(ContractModel):
    line_id: LineId
    sku: Sku
    quantity: Quantity


class ReturnReceiptRequest(ContractModel):
    """Goods of a return (RMA) received at a warehouse. Idempotent by rma_reference."""

    rma_reference: Identifier
    order_reference: Identifier
    warehouse: str = Field(min_length=1, max_length=64)
    lines: list[ReturnReceiptLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class ReturnReceipt(ContractModel):
    receipt_id: Identifier
    rma_reference: Identifier
    order_reference: Identifier
    warehouse: str
    lines: list[ReturnReceiptLineIn]
    received_at: UtcDateTime


class InspectionLine(InspectionResult):
    """The inspection of units of one returned line; restock only resellable goods."""

    sku: Sku
    quantity: Quantity


class InspectionRequest(ContractModel):
    """The inspection of received return goods; restocked units become sellable again."""

    lines: list[InspectionLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)


class InspectionRecord(ContractModel):
    rma_reference: Identifier
    warehouse: str
    lines: list[InspectionLine]
    inspected_at: UtcDateTime
