"""Prices per SKU and channel, with time-boxed promotions."""

from datetime import datetime
from typing import Self

from pydantic import Field, model_validator

from contracts.common import ChannelCode, ContractModel, Identifier, Sku, UtcDateTime, ensure_utc
from contracts.money import Money

__all__ = ["Price", "Promotion"]


class Promotion(ContractModel):
    """A promotional price valid in the half-open window [starts_at, ends_at)."""

    promotion_id: Identifier = Field(description="Promotion identifier in the ERP.")
    price: Money = Field(description="Promotional unit price.")
    starts_at: UtcDateTime = Field(description="First instant the promotion applies (inclusive).")
    ends_at: UtcDateTime = Field(description="First instant it no longer applies (exclusive).")

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def covers(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) lies in [starts_at, ends_at)."""
        return self.starts_at <= ensure_utc(at) < self.ends_at


class Price(ContractModel):
    """The price of a SKU, optionally specific to one channel."""

    sku: Sku = Field(description="Stock keeping unit.")
    channel: ChannelCode | None = Field(
        default=None, description="Channel this price applies to; absent for all channels."
    )
    base_price: Money = Field(description="Regular unit price when no promotion applies.")
    promotions: list[Promotion] = Field(
        default_factory=list, description="Promotions, in the base price's currency."
    )

    @model_validator(mode="after")
    def _promotions_share_currency(self) -> Self:
        foreign = [
            p.promotion_id for p in self.promotions if p.price.currency != self.base_price.currency
        ]
        if foreign:
            raise ValueError(
                f"promotion prices must be in {self.base_price.currency}: {', '.join(foreign)}"
            )
        return self

    def effective_at(self, at: datetime) -> Money:
        """Unit price at instant ``at``: the covering promotion's price, else the base price.

        If several promotions cover ``at``, the lowest price wins. ``at`` must be timezone-aware.
        """
        covering = [p.price for p in self.promotions if p.covers(at)]
        if not covering:
            return self.base_price
        return min(covering, key=lambda money: money.amount)
