"""The orders port: what the partner edge may ask of order-to-cash, in-process or over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from contracts import Order, OrderStatus, OrderSubmission
from gateway_infra.unit_of_work import UnitOfWork

__all__ = ["AnswerWriter", "OrderPage", "OrdersPort", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    """The order after submission, and whether this submission created it."""

    order: Order
    created: bool


@dataclass(frozen=True)
class OrderPage:
    """A page of orders and the cursor of the next page (None on the last)."""

    items: list[Order]
    next_cursor: str | None


AnswerWriter = Callable[[UnitOfWork, Submitted], None]
"""The caller's record of its answer to a submission (the partner edge's idempotency record),
written in the transaction that settles the submission, so that the answer commits with the order
(one transaction less per order). Called at most once, with the result submit will return; an
implementation that settles the submission in no transaction of the caller's store (the ERP
unreachable, a port over HTTP) does not call it, and the caller records its answer itself."""


class OrdersPort(Protocol):
    """Order intake and reading, as the partner layer uses them."""

    async def submit(
        self, submission: OrderSubmission, *, actor: str, answer: AnswerWriter | None = None
    ) -> Submitted:
        """Record the channel order once and validate it (see OrderService.submit)."""
        ...

    async def get(self, order_id: str) -> Order | None:
        """The order with its history, or None."""
        ...

    async def list(
        self,
        *,
        channel: str | None = None,
        statuses: Sequence[OrderStatus] = (),
        updated_after: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> OrderPage:
        """Orders by last change (filters optional), one page at a time."""
        ...

    async def cancel(self, order_id: str, *, actor: str, reason: str | None = None) -> Order:
        """Cancel an order not yet shipped (idempotent); 409 order-not-cancellable after."""
        ...
