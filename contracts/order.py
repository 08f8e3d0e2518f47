"""Orders: what channels submit, the canonical order, its status history and line rejections."""

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
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
from contracts.customer import Address, Customer
from contracts.money import MAX_AMOUNT, Money

__all__ = [
    "MAX_ORDER_LINES",
    "LineRejection",
    "Order",
    "OrderLine",
    "OrderStatus",
    "OrderSubmission",
    "OrderTransition",
    "RejectionReason",
    "check_order_total",
    "order_total",
]

MAX_ORDER_LINES = 500


class OrderStatus(StrEnum):
    """Lifecycle state of an order inside the gateway."""

    RECEIVED = "received"
    RESERVED = "reserved"
    VALIDATED = "validated"
    ACCEPTED = "accepted"
    RELEASED = "released"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    SETTLED = "settled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ON_HOLD = "on_hold"


class RejectionReason(StrEnum):
    """Why an order line could not be accepted."""

    UNKNOWN_SKU = "unknown_sku"
    INACTIVE_SKU = "inactive_sku"
    INVALID_QUANTITY = "invalid_quantity"
    PRICE_MISMATCH = "price_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_STOCK = "insufficient_stock"


class OrderLine(ContractModel):
    """One ordered SKU with its quantity and unit price."""

    line_id: LineId = Field(description="Line identifier, unique within the order.")
    sku: Sku = Field(description="Ordered stock keeping unit.")
    quantity: Quantity = Field(description="Ordered units, 1..1,000,000.")
    unit_price: Money = Field(description="Price of one unit, in the order's currency.")

    @property
    def line_total(self) -> Money:
        """Unit price times quantity."""
        return self.unit_price.times(self.quantity)


def order_total(lines: Iterable[OrderLine], currency: str) -> Money:
    """Sum of unit price x quantity over the lines; ValueError if a line has another currency."""
    total = Money.zero(currency)
    for line in lines:
        total = total + line.line_total
    return total


def check_order_total(amounts: Iterable[tuple[Decimal, int]]) -> None:
    """An order's total (unit price x quantity, summed) must itself be a valid amount."""
    total = sum((abs(price) * quantity for price, quantity in amounts), Decimal(0))
    if total >= MAX_AMOUNT:
        raise ValueError(f"the order total must be below {MAX_AMOUNT:,}")


def _check_lines(lines: list[OrderLine], currency: str) -> None:
    ensure_unique((line.line_id for line in lines), "line_id")
    check_order_total((line.unit_price.amount, line.quantity) for line in lines)
    foreign = [line.line_id for line in lines if line.unit_price.currency != currency]
    if foreign:
        raise ValueError(
            f"all unit prices must be in the order currency {currency}; "
            f"lines in another currency: {', '.join(foreign)}"
        )


class OrderSubmission(ContractModel):
    """An order as submitted by a sales channel or an internal application."""

    channel: ChannelCode = Field(description="Submitting channel code, e.g. webshop.")
    channel_order_id: Identifier = Field(description="The order's identifier in the channel.")
    currency: CurrencyCode = Field(description="ISO 4217 currency of every price in the order.")
    customer: Customer | None = Field(default=None, description="The buying customer.")
    shipping_address: Address | None = Field(default=None, description="Delivery address.")
    lines: list[OrderLine] = Field(
        min_length=1,
        max_length=MAX_ORDER_LINES,
        description="Ordered lines (1..500), each with a unique line_id.",
    )
    placed_at: UtcDateTime | None = Field(
        default=None, description="When the customer placed the order (UTC)."
    )
    pending: bool = Field(
        default=False,
        description=(
            "The channel has not confirmed the order yet (e.g. payment pending). Its stock is "
            "held until the channel profile's pending expiry; it is validated and acknowledged "
            "once submitted again with pending false, and cancelled if that never happens."
        ),
    )

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> Self:
        _check_lines(self.lines, self.currency)
        return self


class LineRejection(ContractModel):
    """Why one line of an order was rejected."""

    line_id: LineId = Field(description="The rejected order line.")
    reason: RejectionReason = Field(description="Machine-readable rejection reason.")
    detail: str = Field(min_length=1, max_length=1000, description="Human-readable explanation.")


class OrderTransition(ContractModel):
    """One status change in an order's history."""

    from_status: OrderStatus | None = Field(
        default=None, description="Status before the change; absent for the initial status."
    )
    to_status: OrderStatus = Field(description="Status after the change.")
    at: UtcDateTime = Field(description="When the change happened (UTC).")
    actor: str = Field(
        min_length=1, max_length=128, description="Who or what made the change, e.g. process_api."
    )
    correlation_id: str | None = Field(
        default=None, max_length=128, description="Correlation id of the request that caused it."
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="Why the change was made, if noteworthy."
    )


class Order(ContractModel):
    """The canonical order held by the gateway."""

    order_id: Identifier = Field(description="Gateway order identifier, e.g. ord_123.")
    channel: ChannelCode = Field(description="Channel the order came from.")
    channel_order_id: Identifier = Field(description="The order's identifier in the channel.")
    status: OrderStatus = Field(description="Current lifecycle status.")
    currency: CurrencyCode = Field(description="ISO 4217 currency of every amount in the order.")
    customer: Customer | None = Field(default=None, description="The buying customer.")
    shipping_address: Address | None = Field(default=None, description="Delivery address.")
    lines: list[OrderLine] = Field(
        min_length=1, max_length=MAX_ORDER_LINES, description="Order lines with unique line_id."
    )
    total: Money = Field(description="Order total in the order currency (see order_total).")
    created_at: UtcDateTime = Field(description="When the gateway received the order (UTC).")
    updated_at: UtcDateTime = Field(description="When the order last changed (UTC).")
    pending_expires_at: UtcDateTime | None = Field(
        default=None,
        description="While the channel holds the order as pending: when it lapses (UTC).",
    )
    history: list[OrderTransition] = Field(
        default_factory=list, description="Status changes, oldest first."
    )
    rejections: list[LineRejection] = Field(
        default_factory=list, description="Lines that were rejected, with reasons."
    )
    shipped_quantities: dict[LineId, int] = Field(
        default_factory=dict,
        description="Units the warehouse confirmed shipped, per line id (absent: none yet).",
    )

    @model_validator(mode="after")
    def _order_is_consistent(self) -> Self:
        _check_lines(self.lines, self.currency)
        if self.total.currency != self.currency:
            raise ValueError(
                f"total currency {self.total.currency} differs from order currency {self.currency}"
            )
        unknown = {r.line_id for r in self.rejections} - {line.line_id for line in self.lines}
        if unknown:
            raise ValueError(f"rejections refer to unknown lines: {', '.join(sorted(unknown))}")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at must not be before created_at")
        return self

    @classmethod
    def order_total(cls, lines: Iterable[OrderLine], currency: str) -> Money:
        """Sum of unit price x quantity over the lines, in the given currency."""
        return order_total(lines, currency)
