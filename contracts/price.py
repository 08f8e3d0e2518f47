"""Prices per SKU and channel, with time-boxed promotions."""

from datetime import datetime
from typing import Self

from pydantic import Field, model_validator

from contracts.common import ChannelCode, ContractModel, Identifier, Sku, UtcDateTime, ensure_utc
from contracts.money import Money

__all__ = ["ChannelPrice", "Price", "Promotion"]


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


class ChannelPrice(ContractModel):
    """The price one channel charges for a SKU at one instant, from its published price book."""

    sku: Sku = Field(description="Stock keeping unit.")
    channel: ChannelCode = Field(description="The channel the price applies to.")
    at: UtcDateTime = Field(description="The instant the price is for (UTC).")
    price: Money | None = Field(
        description=(
            "Unit price at `at`: the promotion's price inside its [starts_at, ends_at) window, "
            "else the base price; null when no published price book version lists the SKU."
        )
    )
    base_price: Money | None = Field(
        description="The ERP's base price in that version; null like price."
    )
    promotion: Promotion | None = Field(
        default=None, description="The promotion that sets the price at `at`, if any."
    )
    book_id: Identifier | None = Field(
        default=None, description="The price book the price comes from."
    )
    version: int | None = Field(
        default=None, ge=1, description="The published version of that book in force at `at`."
    )
