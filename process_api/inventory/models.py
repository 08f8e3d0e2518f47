"""What inventory governance hands back: positions, shortfalls, consumptions and publications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

SOURCE = "process_api.inventory"
EXPIRY_TIMER = "inventory.reservation_expiry"
"""Timer kind, keyed by order id, that releases an order's reservations once they expire."""


class ReservationState(StrEnum):
    HELD = "held"
    """Counts in the position's reserved quantity (its open part: quantity - consumed)."""
    RELEASED = "released"
    """Given back: cancelled or rejected order."""
    EXPIRED = "expired"
    """Given back: the channel's pending order was not confirmed in time."""
    CONSUMED = "consumed"
    """Shipped in full: the units left the warehouse."""


class ReservationLine(NamedTuple):
    """One order line to reserve; a plain (line_id, sku, quantity) tuple works as well."""

    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class Shortfall:
    """An order line that could not be reserved, and how much was free for it."""

    line_id: str
    sku: str
    requested: int
    available: int


@dataclass(frozen=True)
class Position:
    """One SKU's stock as the gateway sees it: on-hand from the WMS, reserved by the gateway."""

    sku: str
    on_hand: int
    reserved: int
    on_hand_as_of: datetime | None = None
    updated_at: datetime | None = None

    @property
    def shortfall(self) -> int:
        """Units reserved beyond what the warehouse holds (the WMS counted fewer)."""
        return max(self.reserved - self.on_hand, 0)


@dataclass(frozen=True)
class Consumption:
    """What one shipment of an order line did to its reservation."""

    order_id: str
    line_id: str
    sku: str
    consumed: int
    """Units taken out of the reservation."""
    beyond_reservation: int
    """Units shipped that were not (or no longer) reserved; they still left on-hand."""
    fully_consumed: bool


@dataclass(frozen=True, slots=True)
class Published:
    """One (channel, SKU) availability value sent, with the value it replaced."""

    channel: str
    sku: str
    quantity: int
    previous: int | None
    event_id: str


class ReservationNotFound(LookupError):
    """No reservation for this order line."""

    def __init__(self, order_id: str, line_id: str) -> None:
        super().__init__(f"no reservation for line {line_id!r} of order {order_id}")
        self.order_id = order_id
        self.line_id = line_id
