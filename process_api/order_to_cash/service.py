"""Order-to-cash rules: record every channel order durably, then accept it only once the ERP has
validated it. An ERP outage leaves the order waiting (received) with a retry timer, never lost."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from contracts import (
    LineRejection,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    RejectionReason,
)
from contracts.erp import SalesOrderDecision, SalesOrderRequest
from gateway_infra.problems import ProblemError
from gateway_infra.scheduler import DueTimer, RetryPolicy, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.inventory.repository import release_order, reserve_lines
from process_api.inventory.service import InventoryService
from process_api.order_to_cash import repository as repo
from process_api.order_to_cash.paging import decode_cursor, encode_cursor
from process_api.order_to_cash.port import OrderPage, Submitted
from process_api.problems import ORDER_NOT_CANCELLABLE
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable

log = logging.getLogger("gateway.order_to_cash")

SOURCE = "process_api.order_to_cash"
VALIDATE_TIMER = "order.validate"
ERP_CANCEL_TIMER = "order.erp_cancel"
# Before anything left the warehouse, an order may still be cancelled.
CANCELLABLE = frozenset(
    {
        OrderStatus.RECEIVED,
        OrderStatus.RESERVED,
        OrderStatus.VALIDATED,
        OrderStatus.ACCEPTED,
        OrderStatus.RELEASED,
        OrderStatus.ON_HOLD,
    }
)
# Order capture is critical: retry often and for long before an exception is raised.
VALIDATION_RETRY = RetryPolicy(
    max_attempts=50, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
FIRST_RETRY_AFTER = timedelta(seconds=30)


class OrderService:
    """Intake, validation and reading of orders."""

    def __init__(self, store: Store, erp: ErpPort, inventory: InventoryService) -> None:
        self.store = store
        self.erp = erp
        self.inventory = inventory

    def register_timers(self, scheduler: Scheduler) -> None:
        scheduler.register(VALIDATE_TIMER, self._on_validate_timer, retry=VALIDATION_RETRY)
        scheduler.register(ERP_CANCEL_TIMER, self._on_erp_cancel_timer, retry=VALIDATION_RETRY)

    async def submit(self, submission: OrderSubmission, *, actor: str) -> Submitted:
        """Record the order (once per channel order id), then try to validate it right away."""
        try:
            order_id, created = await self.store.write(
                lambda uow: self._record_intake(uow, submission, actor)
            )
        except IntegrityError:
            # A concurrent submission of the same channel order won the insert.
            existing = await self.store.read(
                lambda conn: repo.find_order_id(
                    conn, submission.channel, submission.channel_order_id
                )
            )
            if existing is None:
                raise
            order_id, created = existing, False
        if created:
            await self._publish(submission.lines)
            return Submitted(await self.validate(order_id), created=True)
        return Submitted(await self.require(order_id), created=False)

    async def _publish(self, lines: Sequence[OrderLine]) -> None:
        """Publish the availability the order changed (in a transaction of its own; a periodic
        sweep repairs what a crash between the two transactions left unpublished)."""
        await self.inventory.publish_changes(skus={line.sku for line in lines})

    def _record_intake(
        self, uow: UnitOfWork, submission: OrderSubmission, actor: str
    ) -> tuple[str, bool]:
        existing = repo.find_order_id(uow.conn, submission.channel, submission.channel_order_id)
        if existing is not None:
            return existing, False
        order_id = repo.insert_order(uow, submission, actor=actor)
        shortfalls = reserve_lines(
            uow,
            order_id=order_id,
            channel=submission.channel,
            channel_order_id=submission.channel_order_id,
            lines=[(line.line_id, line.sku, line.quantity) for line in submission.lines],
            expires_at=None,
        )
        if shortfalls:
            rejections = [
                LineRejection(
                    line_id=s.line_id,
                    reason=RejectionReason.INSUFFICIENT_STOCK,
                    detail=f"{s.requested} of {s.sku} requested, {s.available} available",
                )
                for s in shortfalls
            ]
            repo.move_order(
                uow,
                order_id,
                OrderStatus.RECEIVED,
                OrderStatus.REJECTED,
                actor="gateway",
                reason="insufficient stock",
            )
            repo.insert_rejections(uow, order_id, rejections)
            uow.emit(
                "order.rejected",
                source=SOURCE,
                subject=f"order/{order_id}",
                channel=submission.channel,
                data={
                    "order_id": order_id,
                    "channel_order_id": submission.channel_order_id,
                    "rejections": [r.model_dump(mode="json") for r in rejections],
                },
            )
            return order_id, True
        repo.move_order(uow, order_id, OrderStatus.RECEIVED, OrderStatus.RESERVED, actor="gateway")
        schedule(
            uow.conn,
            kind=VALIDATE_TIMER,
            key=order_id,
            due_at=uow.now + FIRST_RETRY_AFTER,
            now=uow.now,
            payload={"order_id": order_id},
        )
        uow.emit(
            "order.received",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=submission.channel,
            data={"order_id": order_id, "channel_order_id": submission.channel_order_id},
        )
        return order_id, True

    async def validate(self, order_id: str, *, raise_unavailable: bool = False) -> Order:
        """Ask the ERP to validate a received order and record its decision.

        While the ERP is unavailable the order stays received and its timer retries later.
        """
        order = await self.require(order_id)
        if order.status not in (OrderStatus.RECEIVED, OrderStatus.RESERVED):
            return order
        request = SalesOrderRequest(
            reference=order.order_id,
            channel=order.channel,
            currency=order.currency,
            customer=order.customer,
            lines=order.lines,
        )
        try:
            decision = await self.erp.create_sales_order(request)
        except BackendUnavailable as exc:
            log.warning(
                "order validation deferred", extra={"order_id": order_id, "error": str(exc)}
            )
            if raise_unavailable:
                raise
            return order
        await self.store.write(lambda uow: self._record_decision(uow, order, decision))
        if not decision.accepted:
            await self._publish(order.lines)
        return await self.require(order_id)

    def _record_decision(self, uow: UnitOfWork, order: Order, decision: SalesOrderDecision) -> None:
        subject = f"order/{order.order_id}"
        if decision.accepted:
            assert decision.sales_order is not None
            if not repo.move_order(
                uow,
                order.order_id,
                order.status,
                OrderStatus.VALIDATED,
                actor="erp",
                erp_sales_order_id=decision.sales_order.sales_order_id,
            ):
                return  # decided already by a concurrent validation
            repo.move_order(
                uow, order.order_id, OrderStatus.VALIDATED, OrderStatus.ACCEPTED, actor="gateway"
            )
            uow.emit(
                "order.accepted",
                source=SOURCE,
                subject=subject,
                channel=order.channel,
                data={
                    "order_id": order.order_id,
                    "channel_order_id": order.channel_order_id,
                    "erp_sales_order_id": decision.sales_order.sales_order_id,
                },
            )
        else:
            if not repo.move_order(
                uow,
                order.order_id,
                order.status,
                OrderStatus.REJECTED,
                actor="erp",
                reason="; ".join(f"{r.line_id}: {r.reason}" for r in decision.rejections),
            ):
                return
            repo.insert_rejections(uow, order.order_id, decision.rejections)
            release_order(uow, order.order_id, "rejected")
            uow.emit(
                "order.rejected",
                source=SOURCE,
                subject=subject,
                channel=order.channel,
                data={
                    "order_id": order.order_id,
                    "channel_order_id": order.channel_order_id,
                    "rejections": [r.model_dump(mode="json") for r in decision.rejections],
                },
            )
        cancel(uow.conn, kind=VALIDATE_TIMER, key=order.order_id)

    async def _on_validate_timer(self, timer: DueTimer) -> None:
        await self.validate(str(timer.payload["order_id"]), raise_unavailable=True)

    async def list(
        self,
        *,
        channel: str | None = None,
        statuses: Sequence[OrderStatus] = (),
        updated_after: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> OrderPage:
        """A page of orders by last change, and the cursor of the next page (None at the end)."""
        after = decode_cursor(cursor) if cursor else None
        found = await self.store.read(
            lambda conn: repo.list_orders(
                conn,
                channel=channel,
                statuses=statuses,
                updated_after=updated_after,
                after=after,
                limit=limit + 1,
            )
        )
        items = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor(items[-1].updated_at, items[-1].order_id) if more else None
        return OrderPage(items=items, next_cursor=next_cursor)

    async def cancel(self, order_id: str, *, actor: str, reason: str | None = None) -> Order:
        """Cancel an order that has not shipped; cancelling again changes nothing.

        The cancellation is recorded first; the ERP's sales order is cancelled right after, and
        by a retried timer while the ERP cannot be reached."""
        order = await self.store.write(
            lambda uow: self._record_cancel(uow, order_id, actor, reason)
        )
        await self._publish(order.lines)
        await self.cancel_in_erp(order_id)
        return await self.require(order_id)

    def _record_cancel(
        self, uow: UnitOfWork, order_id: str, actor: str, reason: str | None
    ) -> Order:
        order = repo.load_order(uow.conn, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        if order.status is OrderStatus.CANCELLED:
            return order
        if order.status not in CANCELLABLE:
            raise ProblemError(
                ORDER_NOT_CANCELLABLE,
                f"order {order_id} is {order.status.value}; only orders not yet shipped can be "
                "cancelled",
                status=order.status.value,
            )
        repo.move_order(
            uow, order_id, order.status, OrderStatus.CANCELLED, actor=actor, reason=reason
        )
        release_order(uow, order_id, "cancelled")
        cancel(uow.conn, kind=VALIDATE_TIMER, key=order_id)
        schedule(
            uow.conn,
            kind=ERP_CANCEL_TIMER,
            key=order_id,
            due_at=uow.now + FIRST_RETRY_AFTER,
            now=uow.now,
            payload={"order_id": order_id},
        )
        uow.emit(
            "order.cancelled",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=order.channel,
            data={
                "order_id": order_id,
                "channel_order_id": order.channel_order_id,
                "reason": reason,
            },
        )
        return order

    async def cancel_in_erp(self, order_id: str, *, raise_unavailable: bool = False) -> None:
        """Cancel the ERP's sales order of a cancelled order (once it has one)."""
        erp_id = await self.store.read(lambda conn: repo.erp_sales_order_id(conn, order_id))
        try:
            if erp_id is not None:
                await self.erp.cancel_sales_order(erp_id)
        except BackendUnavailable:
            if raise_unavailable:
                raise
            return
        await self.store.write(lambda uow: cancel(uow.conn, kind=ERP_CANCEL_TIMER, key=order_id))

    async def _on_erp_cancel_timer(self, timer: DueTimer) -> None:
        await self.cancel_in_erp(str(timer.payload["order_id"]), raise_unavailable=True)

    async def get(self, order_id: str) -> Order | None:
        return await self.store.read(lambda conn: repo.load_order(conn, order_id))

    async def require(self, order_id: str) -> Order:
        order = await self.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order


class OrderNotFound(LookupError):
    """No order with this id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id
