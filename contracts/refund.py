"""Credit notes raised by the ERP and refunds paid to customers."""

from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import ContractModel, Identifier, LineId, Quantity, UtcDateTime
from contracts.money import Money

__all__ = ["CreditNote", "CreditNoteLine", "Refund", "RefundKind", "RefundState"]


class CreditNoteLine(ContractModel):
    """Credited units of one invoiced order line."""

    line_id: LineId = Field(description="The order line being credited.")
    quantity: Quantity = Field(description="Credited units.")
    amount: Money = Field(description="Amount credited for this line (all units).")


class CreditNote(ContractModel):
    """A credit note against an invoice."""

    credit_note_id: Identifier | None = Field(
        default=None, description="ERP credit note number, once issued."
    )
    invoice_id: Identifier = Field(description="Invoice being credited.")
    order_id: Identifier = Field(description="Gateway order identifier.")
    lines: list[CreditNoteLine] = Field(min_length=1, description="Credited lines.")
    total: Money = Field(description="Total credited amount.")
    reason: str = Field(min_length=1, max_length=500, description="Why the credit was raised.")

    @model_validator(mode="after")
    def _amounts_share_currency(self) -> Self:
        foreign = [
            line.line_id for line in self.lines if line.amount.currency != self.total.currency
        ]
        if foreign:
            raise ValueError(
                f"line amounts must be in the total's currency {self.total.currency}: "
                f"{', '.join(foreign)}"
            )
        return self


class RefundKind(StrEnum):
    """What triggered a refund."""

    IMMEDIATE = "immediate"
    """A low-value line refunded when the return was authorized (channel policy)."""
    ON_RECEIPT = "on_receipt"
    """Units refunded when the warehouse received them (channel policy)."""
    APPROVED = "approved"
    """Approved after the goods were inspected: the default."""
    CHANNEL = "channel"
    """The channel refunded its customer on its own; credited in the ERP after inspection."""


class RefundState(StrEnum):
    AWAITING_INSPECTION = "awaiting_inspection"
    """A channel's refund: credited in the ERP once the goods are inspected."""
    PENDING = "pending"
    """The credit note is due; the ERP has not posted it yet (retried)."""
    POSTED = "posted"
    """The ERP posted the credit note(s)."""


class Refund(ContractModel):
    """Money paid back to a customer, by us or by the channel, and its ERP credit notes."""

    refund_id: Identifier = Field(description="Gateway refund identifier.")
    return_id: Identifier | None = Field(
        default=None, description="Return that triggered the refund, if any."
    )
    order_id: Identifier = Field(description="Gateway order identifier.")
    kind: RefundKind = Field(default=RefundKind.APPROVED, description="What triggered it.")
    state: RefundState = Field(default=RefundState.POSTED, description="Where its credit stands.")
    amount: Money = Field(description="Refunded amount; must be positive.")
    lines: list[CreditNoteLine] = Field(
        default_factory=list, description="Refunded units and amounts per order line."
    )
    credit_note_ids: list[Identifier] = Field(
        default_factory=list, description="The ERP's credit notes, once posted."
    )
    channel_refunded: bool = Field(
        description="True if the channel paid the customer (marketplace refund)."
    )
    requested_at: UtcDateTime | None = Field(
        default=None, description="When the refund was decided (UTC)."
    )
    issued_at: UtcDateTime | None = Field(
        default=None, description="When the ERP posted its credit (UTC); absent until then."
    )

    @model_validator(mode="after")
    def _amount_is_consistent(self) -> Self:
        if self.amount.amount <= 0:
            raise ValueError("refund amount must be positive")
        if self.lines:
            if any(line.amount.currency != self.amount.currency for line in self.lines):
                raise ValueError("line amounts must be in the refund's currency")
            total = sum((line.amount.amount for line in self.lines), Decimal(0))
            if total != self.amount.amount:
                raise ValueError(f"line amounts add up to {total}, not {self.amount.amount}")
        if self.channel_refunded != (self.kind is RefundKind.CHANNEL):
            raise ValueError("channel_refunded is true exactly for refunds of kind channel")
        return self
