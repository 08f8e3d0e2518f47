"""Customer returns: request, receipt at the warehouse, inspection and disposition."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
    MAX_LINE_QUANTITY,
    ChannelCode,
    ContractModel,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_unique,
)

__all__ = [
    "Disposition",
    "InspectionGrade",
    "InspectionResult",
    "Return",
    "ReturnLine",
    "ReturnReceiptLine",
    "ReturnRequest",
    "ReturnStatus",
]


class ReturnStatus(StrEnum):
    """Lifecycle state of a return."""

    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    REFUSED = "refused"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    REFUND_APPROVED = "refund_approved"
    REFUNDED = "refunded"
    CHANNEL_REFUNDED = "channel_refunded"
    CLOSED = "closed"


class InspectionGrade(StrEnum):
    """Condition of returned goods found at inspection."""

    RESELLABLE = "resellable"
    DAMAGED = "damaged"
    MISSING = "missing"


class Disposition(StrEnum):
    """What the warehouse does with inspected goods."""

    RESTOCK = "restock"
    QUARANTINE = "quarantine"
    SCRAP = "scrap"


class ReturnLine(ContractModel):
    """Units of one order line the customer sends back."""

    line_id: LineId = Field(description="The order line being returned.")
    sku: Sku = Field(description="Returned stock keeping unit.")
    quantity: Quantity = Field(description="Units announced for return.")
    reason: str = Field(min_length=1, max_length=500, description="Customer's return reason.")


class ReturnReceiptLine(ContractModel):
    """Units of a return line that physically arrived at the warehouse."""

    line_id: LineId = Field(description="The order line the goods belong to.")
    quantity_received: int = Field(
        ge=0, le=MAX_LINE_QUANTITY, description="Units received; 0 if nothing arrived."
    )


class InspectionResult(ContractModel):
    """Outcome of inspecting returned units of one line."""

    line_id: LineId = Field(description="The order line the goods belong to.")
    grade: InspectionGrade = Field(description="Condition found at inspection.")
    disposition: Disposition = Field(description="What happens to the goods next.")
    quantity: int = Field(ge=0, le=MAX_LINE_QUANTITY, description="Units with this outcome.")
    note: str | None = Field(default=None, max_length=1000, description="Inspector's remark.")

    @model_validator(mode="after")
    def _only_resellable_goods_are_restocked(self) -> Self:
        if self.disposition is Disposition.RESTOCK and self.grade is not InspectionGrade.RESELLABLE:
            raise ValueError(f"{self.grade.value} goods cannot have disposition restock")
        return self


class ReturnRequest(ContractModel):
    """A return announced by a channel or customer service."""

    order_id: Identifier = Field(description="Gateway order identifier.")
    channel_return_id: Identifier = Field(description="The return's identifier in the channel.")
    lines: list[ReturnLine] = Field(
        min_length=1, description="Lines being returned, each line_id at most once."
    )

    @model_validator(mode="after")
    def _line_ids_are_unique(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class Return(ContractModel):
    """The canonical return held by the gateway."""

    return_id: Identifier = Field(description="Gateway return identifier.")
    order_id: Identifier = Field(description="Gateway order identifier.")
    channel: ChannelCode = Field(description="Channel the order came from.")
    channel_return_id: Identifier | None = Field(
        default=None, description="The return's identifier in the channel, if it has one."
    )
    status: ReturnStatus = Field(description="Current lifecycle status.")
    lines: list[ReturnLine] = Field(min_length=1, description="Lines announced for return.")
    receipts: list[ReturnReceiptLine] = Field(
        default_factory=list, description="What arrived at the warehouse."
    )
    inspections: list[InspectionResult] = Field(
        default_factory=list, description="Inspection outcomes."
    )
    created_at: UtcDateTime = Field(description="When the return was created (UTC).")
    updated_at: UtcDateTime = Field(description="When the return last changed (UTC).")

    @model_validator(mode="after")
    def _return_is_consistent(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at must not be before created_at")
        return self
