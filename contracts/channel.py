"""Channel profiles: every rule that differs between sales channels, validated in one place."""

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from contracts.common import ChannelCode, ContractModel, DecimalForm

__all__ = [
    "AvailabilityMode",
    "AvailabilityPolicy",
    "ChannelProfile",
    "PriceRules",
    "RefundTiming",
]


class AvailabilityMode(StrEnum):
    """How a channel's share of free stock is computed."""

    SHARED_POOL = "shared_pool"
    """All free stock, as every other shared channel sees it."""
    RING_FENCED = "ring_fenced"
    """At most a fixed quantity per SKU set aside for this channel."""
    PERCENTAGE = "percentage"
    """A percentage of free stock (rounded down)."""


# Decimal strings in the forms the documents state, bounds included.
Percentage = Annotated[
    Decimal,
    DecimalForm(r"^(100(\.0+)?|[1-9][0-9]?(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)$", gt=0, le=100),
]
"""More than 0 and at most 100, e.g. "80" or "12.5"."""
PercentageOrZero = Annotated[
    Decimal, DecimalForm(r"^(100(\.0+)?|[1-9]?[0-9](\.[0-9]+)?)$", ge=0, le=100)
]
"""0 to 100, e.g. "0" or "12.5"."""
NonNegativeDecimal = Annotated[Decimal, DecimalForm(r"^[0-9]+(\.[0-9]+)?$", ge=0)]
"""0 or more, e.g. "15.00"."""


class AvailabilityPolicy(ContractModel):
    """Available-to-sell = on-hand - reserved - safety stock - buffer, then mode, cap and floor."""

    mode: AvailabilityMode = AvailabilityMode.SHARED_POOL
    safety_stock: int = Field(default=0, ge=0, description="Units never offered on any channel.")
    buffer: int = Field(default=0, ge=0, description="Units held back for this channel's sync lag.")
    ring_fenced_quantity: int | None = Field(default=None, ge=0)
    percentage: Percentage | None = None
    cap: int | None = Field(default=None, ge=0, description="Never list more than this.")
    floor: int = Field(
        default=0, ge=0, description="Below this many units, publish 0 (avoid the last-unit race)."
    )

    @model_validator(mode="after")
    def _mode_has_its_parameter(self) -> Self:
        if self.mode is AvailabilityMode.RING_FENCED and self.ring_fenced_quantity is None:
            raise ValueError("a ring_fenced policy needs ring_fenced_quantity")
        if self.mode is AvailabilityMode.PERCENTAGE and self.percentage is None:
            raise ValueError("a percentage policy needs percentage")
        return self

    def available(self, on_hand: int, reserved: int) -> int:
        """Units to publish for one SKU; never negative."""
        free = on_hand - reserved - self.safety_stock - self.buffer
        if free <= 0:
            return 0
        if self.mode is AvailabilityMode.RING_FENCED:
            assert self.ring_fenced_quantity is not None
            free = min(free, self.ring_fenced_quantity)
        elif self.mode is AvailabilityMode.PERCENTAGE:
            assert self.percentage is not None
            free = int(free * self.percentage / 100)
        if self.cap is not None:
            free = min(free, self.cap)
        return 0 if free < self.floor else free


class RefundTiming(StrEnum):
    AFTER_INSPECTION = "after_inspection"
    ON_RECEIPT = "on_receipt"
    IMMEDIATE = "immediate"


class PriceRules(ContractModel):
    """What a channel accepts of price changes and promotions."""

    publication_lead_time: timedelta = Field(default=timedelta(hours=4))
    max_promotions_per_sku: int = Field(default=10, ge=0)
    max_promotion_duration: timedelta = Field(default=timedelta(days=180))
    allow_overlapping_promotions: bool = False
    minimum_margin_percent: PercentageOrZero | None = None


class ChannelProfile(ContractModel):
    """One channel's rules. Onboarding a marketplace is a profile plus a client."""

    channel: ChannelCode
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="Currency the channel sells in.")
    acknowledgement_deadline: timedelta = Field(
        default=timedelta(hours=4), description="How long after creation an order must be acked."
    )
    reserve_pending_orders: bool = Field(
        default=True, description="Pending channel orders (e.g. Amazon Pending) hold stock."
    )
    pending_reservation_expiry: timedelta = Field(default=timedelta(days=21))
    availability: AvailabilityPolicy = Field(default_factory=AvailabilityPolicy)
    return_window: timedelta = Field(default=timedelta(days=30))
    refund_timing: RefundTiming = RefundTiming.AFTER_INSPECTION
    immediate_refund_limit: NonNegativeDecimal | None = Field(
        default=None, description="Refund at once below this line value, when allowed."
    )
    price_rules: PriceRules = Field(default_factory=PriceRules)
    throttling_tier: str = Field(default="standard", min_length=1, max_length=32)
