"""Order-to-cash rules: record every channel order durably, then accept it only once the ERP has
validated it. An ERP outage leaves the order waiting (received) with a retry timer, never lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from contracts import Order, OrderStatus, OrderSubmission
from contracts.erp import SalesOrderDecision, SalesOrderRequest
from gateway_infra.scheduler import DueTimer, RetryPolicy, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.order_to_cash import repository as repo
from process_api.order_to_cash.port import Submitted
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable

log = logging.getLogger("gateway.order_to_cash")

SOURCE = "process_api.order_to_cash"
VALIDATE_TIMER = "order.validate"
# Order capture is critical: retry often and for long before an exception is raised.
VALIDATION_RETRY = RetryPolicy(
    max_attempts=50, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
FIRST_RETRY_AFTER = timedelta(seconds=30)


class OrderService:
    """Intake, validation and reading of orders."""

    def __init__(self, store: Store, erp: ErpPort) -> None:
        self.store = store
        self.erp = erp

    def register_timers(self, scheduler: Scheduler) -> None:
        scheduler.register(VALIDATE_TIMER, self._on_validate_timer, retry=VALIDATION_RETRY)

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
            return Submitted(await self.validate(order_id), created=True)
        return Submitted(await self.require(order_id), created=False)

    def _record_intake(
        self, uow: UnitOfWork, submission: OrderSubmission, actor: str
    ) -> tuple[str, bool]:
        existing = repo.find_order_id(uow.conn, submission.channel, submission.channel_order_id)
        if existing is not None:
            return existing, False
        order_id = repo.insert_order(uow, submission, actor=actor)
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
        if order.status is not OrderStatus.RECEIVED:
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
        return await self.require(order_id)

    def _record_decision(self, uow: UnitOfWork, order: Order, decision: SalesOrderDecision) -> None:
        subject = f"order/{order.order_id}"
        if decision.accepted:
            assert decision.sales_order is not None
            if not repo.move_order(
                uow,
                order.order_id,
                OrderStatus.RECEIVED,
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
                OrderStatus.RECEIVED,
                OrderStatus.REJECTED,
                actor="erp",
                reason="; ".join(f"{r.line_id}: {r.reason}" for r in decision.rejections),
            ):
                return
            repo.insert_rejections(uow, order.order_id, decision.rejections)
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
