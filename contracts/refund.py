"""Credit notes raised by the ERP and refunds paid to customers."""

from typing import Self

from pydantic import Field, model_validator

from contracts.common import ContractModel, Identifier, LineId, Quantity, UtcDateTime
from contracts.money import Money

__all__ = ["CreditNote", "CreditNoteLine", "Refund"]


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


class Refund(ContractModel):
    """Money paid back to a customer, by us or by the channel."""

    refund_id: Identifier = Field(description="Gateway refund identifier.")
    return_id: Identifier | None = Field(
        default=None, description="Return that triggered the refund, if any."
    )
    order_id: Identifier = Field(description="Gateway order identifier.")
    amount: Money = Field(description="Refunded amount; must be positive.")
    channel_refunded: bool = Field(
        description="True if the channel paid the customer (marketplace refund)."
    )
    issued_at: UtcDateTime = Field(description="When the refund was issued (UTC).")

    @model_validator(mode="after")
    def _amount_is_positive(self) -> Self:
        if self.amount.amount <= 0:
            raise ValueError("refund amount must be positive")
        return self
