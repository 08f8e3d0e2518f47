"""Marketplace settlement (payout) reports."""

from typing import Self

from pydantic import Field, model_validator

from contracts.common import ChannelCode, ContractModel, CurrencyCode, Identifier, UtcDateTime
from contracts.money import Money

__all__ = ["SettlementLine", "SettlementReport"]


class SettlementLine(ContractModel):
    """Settled amounts for one order; net must equal gross - fees - refunds."""

    order_id: Identifier | None = Field(
        default=None, description="Gateway order identifier, if the channel knows it."
    )
    channel_order_id: Identifier | None = Field(
        default=None, description="The order's identifier in the channel."
    )
    gross: Money = Field(description="Sales amount collected by the channel.")
    fees: Money = Field(description="Commission and other fees withheld by the channel.")
    refunds: Money = Field(description="Refunds deducted by the channel.")
    net: Money = Field(description="Amount paid out: gross - fees - refunds.")

    @model_validator(mode="after")
    def _is_consistent(self) -> Self:
        if self.order_id is None and self.channel_order_id is None:
            raise ValueError("either order_id or channel_order_id is required")
        expected = self.gross - self.fees - self.refunds
        if self.net.currency != expected.currency or self.net.amount != expected.amount:
            raise ValueError(f"net {self.net} does not equal gross - fees - refunds = {expected}")
        return self


class SettlementReport(ContractModel):
    """One payout from a channel with the orders it covers."""

    channel: ChannelCode = Field(description="Channel that made the payout.")
    payout_id: Identifier = Field(description="The payout's identifier in the channel.")
    period_start: UtcDateTime = Field(description="Start of the settlement period (UTC).")
    period_end: UtcDateTime = Field(description="End of the settlement period (UTC).")
    currency: CurrencyCode = Field(description="ISO 4217 currency of the payout.")
    lines: list[SettlementLine] = Field(description="Settled orders.")

    @model_validator(mode="after")
    def _is_consistent(self) -> Self:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        foreign = [
            line.channel_order_id or line.order_id or "?"
            for line in self.lines
            if line.net.currency != self.currency
        ]
        if foreign:
            raise ValueError(f"lines must be in the payout currency {self.currency}: {foreign}")
        return self

    def total_net(self) -> Money:
        """Sum of the lines' net amounts: the payout amount."""
        total = Money.zero(self.currency)
        for line in self.lines:
            total = total + line.net
        return total
