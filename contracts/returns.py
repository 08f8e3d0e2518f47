"""Customer returns: request, receipt at the warehouse, inspection and disposition."""

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.channel import RefundTiming
from contracts.common import (
    MAX_LINE_QUANTITY,
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
from contracts.money import Money
from contracts.refund import Refund

__all__ = [
    "ChannelRefund",
    "Disposition",
    "InspectionGrade",
    "InspectionResult",
    "RefusalCode",
    "Return",
    "ReturnLine",
    "ReturnReceiptLine",
    "ReturnRefusal",
    "ReturnRequest",
    "ReturnStatus",
    "ReturnTransition",
    "ReturnedLine",
    "WaitingStep",
]


class ReturnStatus(StrEnum):
    """Lifecycle state of a return.

    requested -> authorized (or refused) -> in_transit -> received -> inspected ->
    refund_approved -> refunded -> closed. A return the channel refunded on its own goes
    inspected -> channel_refunded (its refund credited in the ERP) -> closed.
    """

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


class RefusalCode(StrEnum):
    """Why a return line is not authorized."""

    UNKNOWN_LINE = "unknown_line"
    SKU_MISMATCH = "sku_mismatch"
    NOT_SHIPPED = "not_shipped"
    OUTSIDE_RETURN_WINDOW = "outside_return_window"
    QUANTITY_EXCEEDS_RETURNABLE = "quantity_exceeds_returnable"


class ReturnRefusal(ContractModel):
    """One reason a return was refused; a refused return lists every one of them."""

    line_id: LineId = Field(description="The return line the reason is about.")
    code: RefusalCode
    detail: str = Field(min_length=1, max_length=500, description="The reason, for people.")


class ReturnTransition(ContractModel):
    """One change of a return's status: who moved it, when, under which correlation id."""

    from_status: ReturnStatus | None
    to_status: ReturnStatus
    at: UtcDateTime
    actor: str = Field(min_length=1, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=4000)


class ReturnedLine(ReturnLine):
    """A line of a return as the gateway holds it: with the order line's price and the refund
    timing the channel's policy gave it."""

    unit_price: Money | None = Field(
        description="Unit price of the order line; absent when the order has no such line."
    )
    refund_timing: RefundTiming | None = Field(
        description="When this line is refunded; absent on a refused return."
    )


class ChannelRefund(ContractModel):
    """A refund the channel paid to its customer on its own (e.g. at the first carrier scan)."""

    channel_refund_id: Identifier = Field(description="The refund's identifier in the channel.")
    amount: Money = Field(description="What the channel paid back; must be positive.")
    refunded_at: UtcDateTime = Field(description="When the channel refunded (UTC).")

    @model_validator(mode="after")
    def _amount_is_positive(self) -> Self:
        if self.amount.amount <= 0:
            raise ValueError("a channel refund amount must be positive")
        return self


class WaitingStep(StrEnum):
    """A step recorded by the gateway that its system of record has not confirmed yet."""

    RECEIPT = "receipt"
    """The WMS has not recorded the receipt yet; retried."""
    INSPECTION = "inspection"
    """The WMS has not recorded the inspection yet; retried."""
    CREDIT_NOTE = "credit_note"
    """A refund's credit note is not posted by the ERP yet; retried."""


class Return(ContractModel):
    """The canonical return held by the gateway."""

    return_id: Identifier = Field(description="Gateway return identifier.")
    order_id: Identifier = Field(description="Gateway order identifier.")
    channel: ChannelCode = Field(description="Channel the order came from.")
    channel_return_id: Identifier | None = Field(
        default=None, description="The return's identifier in the channel, if it has one."
    )
    status: ReturnStatus = Field(description="Current lifecycle status.")
    currency: CurrencyCode = Field(description="Currency of the order and of every refund.")
    lines: list[ReturnedLine] = Field(min_length=1, description="Lines announced for return.")
    value: Money = Field(description="Announced units at the order's prices.")
    refusals: list[ReturnRefusal] = Field(
        default_factory=list, description="Every reason a refused return was refused."
    )
    receipts: list[ReturnReceiptLine] = Field(
        default_factory=list, description="What arrived at the warehouse."
    )
    inspections: list[InspectionResult] = Field(
        default_factory=list, description="Inspection outcomes."
    )
    refunds: list[Refund] = Field(
        default_factory=list, description="Refunds: ours (by policy or approval) and the channel's."
    )
    channel_refund: ChannelRefund | None = Field(
        default=None, description="Set when the channel refunded on its own (channel_refunded)."
    )
    waiting_for: list[WaitingStep] = Field(
        default_factory=list, description="Steps waiting for the ERP or WMS (retried)."
    )
    history: list[ReturnTransition] = Field(
        default_factory=list, description="Every status change, oldest first."
    )
    created_at: UtcDateTime = Field(description="When the return was created (UTC).")
    updated_at: UtcDateTime = Field(description="When the return last changed (UTC).")

    @model_validator(mode="after")
    def _return_is_consistent(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at must not be before created_at")
        return self

    @property
    def channel_refunded(self) -> bool:
        """The channel refunded this return on its own."""
        return self.channel_refund is not None
