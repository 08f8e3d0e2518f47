"""The orders port: what the partner edge may ask of order-to-cash, in-process or over HTTP."""

from __future__ import annotations

from typing import Protocol

from contracts import Order, OrderSubmission
from process_api.order_to_cash.service import Submitted

__all__ = ["OrdersPort", "Submitted"]


class OrdersPort(Protocol):
    """Order intake and reading, as the partner layer uses them."""

    async def submit(self, submission: OrderSubmission, *, actor: str) -> Submitted:
        """Record the channel order once and validate it (see OrderService.submit)."""
        ...

    async def get(self, order_id: str) -> Order | None:
        """The order with its history, or None."""
        ...
