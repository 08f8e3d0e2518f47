"""What inventory governance hands back: positions, shortfalls, consumptions and publications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, overload

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


class Published(NamedTuple):
    """One (channel, SKU) availability value sent, with the value it replaced."""

    channel: str
    sku: str
    quantity: int
    previous: int | None
    event_id: str


class Publication(Sequence[Published]):
    """The values one publication sent, in the order sent, each seen as a Published.

    Kept column by column (a list of channels, one of SKUs...), not as an object per value: a full
    publication sends 600,000 values, and as many objects alive made every full collection of the
    garbage collector while it ran walk them all (a quarter of its time went there)."""

    __slots__ = ("channels", "event_ids", "previous", "quantities", "skus")

    def __init__(self) -> None:
        self.channels: list[str] = []
        self.skus: list[str] = []
        self.quantities: list[int] = []
        self.previous: list[int | None] = []
        self.event_ids: list[str] = []

    def extend(
        self,
        channels: Sequence[str],
        skus: Sequence[str],
        quantities: Sequence[int],
        previous: Sequence[int | None],
        event_ids: Sequence[str],
    ) -> None:
        """Add values sent (the columns of the same values, in the same order)."""
        if not len(channels) == len(skus) == len(quantities) == len(previous) == len(event_ids):
            raise ValueError("the columns of the values sent differ in length")
        self.channels.extend(channels)
        self.skus.extend(skus)
        self.quantities.extend(quantities)
        self.previous.extend(previous)
        self.event_ids.extend(event_ids)

    def __len__(self) -> int:
        return len(self.event_ids)

    @overload
    def __getitem__(self, index: int) -> Published: ...

    @overload
    def __getitem__(self, index: slice) -> list[Published]: ...

    def __getitem__(self, index: int | slice) -> Published | list[Published]:
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(len(self)))]
        return Published(
            self.channels[index],
            self.skus[index],
            self.quantities[index],
            self.previous[index],
            self.event_ids[index],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Publication({list(self)!r})"


class ReservationNotFound(LookupError):
    """No reservation for this order line."""

    def __init__(self, order_id: str, line_id: str) -> None:
        super().__init__(f"no reservation for line {line_id!r} of order {order_id}")
        self.order_id = order_id
        self.line_id = line_id
