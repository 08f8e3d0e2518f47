"""The orders port: what the partner edge may ask of order-to-cash, in-process or over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts import Order, OrderSubmission

__all__ = ["OrdersPort", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    """The order after submission, and whether this submission created it."""

    order: Order
    created: bool


class OrdersPort(Protocol):
    """Order intake and reading, as the partner layer uses them."""

    async def submit(self, submission: OrderSubmission, *, actor: str) -> Submitted:
        """Record the channel order once and validate it (see OrderService.submit)."""
        ...

    async def get(self, order_id: str) -> Order | None:
        """The order with its history, or None."""
        ...
