"""Order-to-cash rules: record every channel order durably, then accept it only once the ERP has
validated it. An ERP outage leaves the order waiting (received) with a retry timer, never lost."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.exc import IntegrityError

from contracts import (
    LineRejection,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    RejectionReason,
)
from contracts.channel import ChannelProfile
from contracts.erp import SalesOrderDecision, SalesOrderRequest
from contracts.exceptions import Severity
from gateway_infra.problems import ProblemError
from gateway_infra.scheduler import DueTimer, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import StepSupervisor, open_exception, resolve_exceptions
from process_api.inventory.repository import release_order, reserve_lines, set_expiry
from process_api.inventory.service import InventoryService
from process_api.order_to_cash import repository as repo
from process_api.order_to_cash.paging import decode_cursor, encode_cursor
from process_api.order_to_cash.port import AnswerWriter, OrderPage, Submitted
from process_api.problems import ORDER_NOT_CANCELLABLE
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable

log = logging.getLogger("gateway.order_to_cash")

SOURCE = "process_api.order_to_cash"
VALIDATE_TIMER = "order.validate"
ERP_CANCEL_TIMER = "order.erp_cancel"
ACK_DEADLINE_TIMER = "order.acknowledgement_deadline"
PENDING_EXPIRY_TIMER = "order.pending_expiry"
ACK_AT_RISK = "acknowledgement_at_risk"
ACK_WARNING_SHARE = 0.75
"""The exception is raised once this share of the channel's acknowledgement deadline has passed
with the order still unacknowledged, leaving a quarter of it for a person to act."""
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
FIRST_RETRY_AFTER = timedelta(seconds=30)

ProfileLookup = Callable[[str], Awaitable[ChannelProfile | None]]
"""The channel's profile (cached), or None for a channel without one."""


@dataclass(frozen=True)
class IntakeRules:
    """What a channel's profile says about taking its orders in."""

    acknowledgement_deadline: timedelta = timedelta(hours=4)
    reserve_pending_orders: bool = True
    pending_reservation_expiry: timedelta = timedelta(days=21)

    @classmethod
    def of(cls, profile: ChannelProfile | None) -> IntakeRules:
        if profile is None:
            return cls()
        return cls(
            acknowledgement_deadline=profile.acknowledgement_deadline,
            reserve_pending_orders=profile.reserve_pending_orders,
            pending_reservation_expiry=profile.pending_reservation_expiry,
        )


class Intake(Enum):
    CREATED = "created"
    CONFIRMED = "confirmed"
    """A pending order the channel has now confirmed: validate it."""
    KNOWN = "known"


class OrderService:
    """Intake, validation and reading of orders."""

    def __init__(
        self,
        store: Store,
        erp: ErpPort,
        inventory: InventoryService,
        *,
        profiles: ProfileLookup | None = None,
    ) -> None:
        self.store = store
        self.erp = erp
        self.inventory = inventory
        self.profiles = profiles

    def register_timers(self, scheduler: Scheduler) -> None:
        # Order capture is critical: its steps retry per its policy, then become an exception
        # (resolved once a retry of the step succeeds).
        capture = StepSupervisor(self.store, workflow="order_capture")
        capture.register(scheduler, VALIDATE_TIMER, self._on_validate_timer)
        capture.register(scheduler, ERP_CANCEL_TIMER, self._on_erp_cancel_timer)
        capture.register(scheduler, ACK_DEADLINE_TIMER, self._on_ack_deadline_timer)
        capture.register(scheduler, PENDING_EXPIRY_TIMER, self._on_pending_expiry_timer)

    async def _rules(self, channel: str) -> IntakeRules:
        if self.profiles is None:
            return IntakeRules()
        try:
            return IntakeRules.of(await self.profiles(channel))
        except ValueError as exc:  # a stored profile that no longer validates
            log.error(
                "channel profile unusable; default intake rules apply",
                extra={"channel": channel, "error": str(exc)},
            )
            return IntakeRules()

    async def submit(
        self, submission: OrderSubmission, *, actor: str, answer: AnswerWriter | None = None
    ) -> Submitted:
        """Record the order (once per channel order id), then try to validate it right away.

        A pending channel order only holds its stock; submitted again without pending, it is
        validated like a new one. `answer` is written in the transaction that settles the
        submission: the ERP's decision, or the intake of an order the ERP will not see now
        (rejected for stock, pending); not at all when the ERP cannot be reached."""
        rules = await self._rules(submission.channel)
        recorded: Order | None = None
        try:
            order_id, intake, recorded = await self.store.write(
                lambda uow: self._record_and_load(uow, submission, actor, rules, answer)
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
            order_id, intake = existing, Intake.KNOWN
        if intake is Intake.KNOWN:
            # Still waiting for the ERP (its first answer was lost, say): try again now rather
            # than at the next timer; validation is idempotent by the order id.
            known = await self._validate_order(
                await self.require(order_id), settle=_settle(answer, created=False)
            )
            return Submitted(known, created=False)
        # The first line of the order's journey in the logs; its correlation id is the order's
        # origin correlation id (buyer details are redacted by the log handler).
        log.info(
            "order received",
            extra={
                "order_id": order_id,
                "channel": submission.channel,
                "channel_order_id": submission.channel_order_id,
                "actor": actor,
            },
        )
        created = intake is Intake.CREATED
        if recorded is None:
            recorded = await self.require(order_id)
        elif not _awaits_erp(recorded):
            return Submitted(recorded, created=created)  # answered with the intake
        order = await self._validate_order(recorded, settle=_settle(answer, created=created))
        return Submitted(order, created=created)

    async def _publish(self, lines: Sequence[OrderLine]) -> None:
        """Publish the availability the order changed (in a transaction of its own; a periodic
        sweep repairs what a crash between the two transactions left unpublished)."""
        await self.inventory.publish_changes(skus={line.sku for line in lines})

    def _record_and_load(
        self,
        uow: UnitOfWork,
        submission: OrderSubmission,
        actor: str,
        rules: IntakeRules,
        answer: AnswerWriter | None = None,
    ) -> tuple[str, Intake, Order | None]:
        """Record the intake and, for a new or confirmed order, publish the availability it
        changed and read the order back, all in the same transaction (two trips to the database
        thread less per order than publishing and reading in transactions of their own; the
        decision is recorded only from the status read here, as before). An order the ERP will
        not see now (rejected for stock, pending) is settled here: its answer is written too."""
        order_id, intake = self._record_intake(uow, submission, actor, rules)
        if intake is Intake.KNOWN:
            return order_id, intake, None
        self.inventory.publish_changes_in(uow, {line.sku for line in submission.lines})
        order = repo.load_order(uow.conn, order_id)
        if order is not None and answer is not None and not _awaits_erp(order):
            answer(uow, Submitted(order, created=intake is Intake.CREATED))
        return order_id, intake, order

    def _record_intake(
        self, uow: UnitOfWork, submission: OrderSubmission, actor: str, rules: IntakeRules
    ) -> tuple[str, Intake]:
        existing = repo.find_order_id(uow.conn, submission.channel, submission.channel_order_id)
        if existing is not None:
            if not submission.pending and self._confirm_pending(uow, existing, rules):
                return existing, Intake.CONFIRMED
            return existing, Intake.KNOWN
        pending_until = uow.now + rules.pending_reservation_expiry if submission.pending else None
        order_id = repo.insert_order(uow, submission, actor=actor, pending_expires_at=pending_until)
        if pending_until is not None:
            schedule(
                uow.conn,
                kind=PENDING_EXPIRY_TIMER,
                key=order_id,
                due_at=pending_until,
                now=uow.now,
                payload={"order_id": order_id},
            )
            if not rules.reserve_pending_orders:
                uow.emit(
                    "order.received",
                    source=SOURCE,
                    subject=f"order/{order_id}",
                    channel=submission.channel,
                    data={
                        "order_id": order_id,
                        "channel_order_id": submission.channel_order_id,
                        "pending": True,
                    },
                )
                return order_id, Intake.CREATED
        self._reserve(
            uow,
            order_id,
            submission.channel,
            submission.channel_order_id,
            submission.lines,
            rules,
            pending_until=pending_until,
        )
        return order_id, Intake.CREATED

    def _confirm_pending(self, uow: UnitOfWork, order_id: str, rules: IntakeRules) -> bool:
        """The channel confirmed a pending order: keep its stock for good (reserving it now if
        pending orders do not hold stock on this channel) and validate it."""
        order = repo.load_order(uow.conn, order_id)
        if order is None or order.pending_expires_at is None:
            return False
        if order.status not in (OrderStatus.RECEIVED, OrderStatus.RESERVED):
            return False
        repo.end_pending(uow, order_id)
        cancel(uow.conn, kind=PENDING_EXPIRY_TIMER, key=order_id)
        uow.emit(
            "order.pending_confirmed",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=order.channel,
            data={"order_id": order_id, "channel_order_id": order.channel_order_id},
        )
        if order.status is OrderStatus.RESERVED:
            set_expiry(uow, order_id, None)
            self._await_validation(uow, order_id, order.channel, rules)
        else:
            self._reserve(uow, order_id, order.channel, order.channel_order_id, order.lines, rules)
        return True

    def _reserve(
        self,
        uow: UnitOfWork,
        order_id: str,
        channel: str,
        channel_order_id: str,
        lines: Sequence[OrderLine],
        rules: IntakeRules,
        *,
        pending_until: datetime | None = None,
    ) -> None:
        """Reserve a received order's stock, or reject it for the lines that do not fit."""
        shortfalls = reserve_lines(
            uow,
            order_id=order_id,
            channel=channel,
            channel_order_id=channel_order_id,
            lines=[(line.line_id, line.sku, line.quantity) for line in lines],
            expires_at=pending_until,
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
                channel=channel,
                data={
                    "order_id": order_id,
                    "channel_order_id": channel_order_id,
                    "rejections": [r.model_dump(mode="json") for r in rejections],
                },
            )
            self._settle_acknowledgement(uow, order_id)
            return
        repo.move_order(uow, order_id, OrderStatus.RECEIVED, OrderStatus.RESERVED, actor="gateway")
        uow.emit(
            "order.received",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=channel,
            data={
                "order_id": order_id,
                "channel_order_id": channel_order_id,
                "pending": pending_until is not None,
            },
        )
        if pending_until is None:
            self._await_validation(uow, order_id, channel, rules)

    def _await_validation(
        self, uow: UnitOfWork, order_id: str, channel: str, rules: IntakeRules
    ) -> None:
        """Retry validation until the ERP decides, and watch the acknowledgement deadline."""
        schedule(
            uow.conn,
            kind=VALIDATE_TIMER,
            key=order_id,
            due_at=uow.now + FIRST_RETRY_AFTER,
            now=uow.now,
            payload={"order_id": order_id},
        )
        deadline = uow.now + rules.acknowledgement_deadline
        schedule(
            uow.conn,
            kind=ACK_DEADLINE_TIMER,
            key=order_id,
            due_at=uow.now + rules.acknowledgement_deadline * ACK_WARNING_SHARE,
            now=uow.now,
            payload={"order_id": order_id, "channel": channel, "deadline": deadline.isoformat()},
        )

    def _settle_acknowledgement(self, uow: UnitOfWork, order_id: str) -> None:
        """The order was acknowledged, rejected or cancelled: nothing to watch any more."""
        cancel(uow.conn, kind=ACK_DEADLINE_TIMER, key=order_id)
        resolve_exceptions(
            uow,
            subject=f"order/{order_id}",
            codes=[ACK_AT_RISK],
            note="the order was decided",
        )

    async def _on_ack_deadline_timer(self, timer: DueTimer) -> None:
        order_id = str(timer.payload["order_id"])
        deadline = datetime.fromisoformat(str(timer.payload["deadline"]))
        await self.store.write(lambda uow: self._raise_ack_at_risk(uow, order_id, deadline))

    def _raise_ack_at_risk(self, uow: UnitOfWork, order_id: str, deadline: datetime) -> None:
        order = repo.load_order(uow.conn, order_id)
        if order is None or order.status not in (OrderStatus.RECEIVED, OrderStatus.RESERVED):
            return
        open_exception(
            uow,
            workflow="order_capture",
            code=ACK_AT_RISK,
            subject=f"order/{order_id}",
            channel=order.channel,
            detail=(
                f"order {order.channel_order_id} of {order.channel} is still {order.status.value}"
                f"; the channel expects its acknowledgement by {deadline.isoformat()}"
            ),
            money_at_risk=order.total,
            severity=Severity.HIGH,
            object_ids={"order_id": order_id, "channel_order_id": order.channel_order_id},
            due_at=deadline,
        )
        uow.emit(
            "order.acknowledgement_at_risk",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=order.channel,
            data={
                "order_id": order_id,
                "channel_order_id": order.channel_order_id,
                "deadline": deadline.isoformat(),
            },
        )

    async def _on_pending_expiry_timer(self, timer: DueTimer) -> None:
        """A pending order the channel never confirmed: cancel it and give its stock back."""
        order_id = str(timer.payload["order_id"])

        def expire(uow: UnitOfWork) -> Order | None:
            order = repo.load_order(uow.conn, order_id)
            if order is None or order.pending_expires_at is None:
                return None
            if order.pending_expires_at > uow.now or order.status not in CANCELLABLE:
                return None
            return self._record_cancel(
                uow, order_id, "gateway", "the channel never confirmed the pending order"
            )

        expired = await self.store.write(expire)
        if expired is not None:
            await self._publish(expired.lines)

    async def validate(self, order_id: str, *, raise_unavailable: bool = False) -> Order:
        """Ask the ERP to validate a received order and record its decision.

        While the ERP is unavailable the order stays received and its timer retries later.
        """
        return await self._validate_order(
            await self.require(order_id), raise_unavailable=raise_unavailable
        )

    async def _validate_order(
        self,
        order: Order,
        *,
        raise_unavailable: bool = False,
        settle: Callable[[UnitOfWork, Order], None] | None = None,
    ) -> Order:
        """validate() of an order already read; settle(uow, decided order) is called in the
        transaction that records the ERP's decision."""
        order_id = order.order_id
        if not _awaits_erp(order):
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
        decided = await self.store.write(lambda uow: self._decide(uow, order, decision, settle))
        if not decision.accepted:
            await self._publish(order.lines)
        return decided

    def _decide(
        self,
        uow: UnitOfWork,
        order: Order,
        decision: SalesOrderDecision,
        settle: Callable[[UnitOfWork, Order], None] | None = None,
    ) -> Order:
        """Record the decision and read the order back in the same transaction (one trip to
        the database thread less per order than reading it afterwards)."""
        self._record_decision(uow, order, decision)
        decided = repo.load_order(uow.conn, order.order_id)
        if decided is None:
            raise OrderNotFound(order.order_id)
        if settle is not None:
            settle(uow, decided)
        return decided

    def _record_decision(self, uow: UnitOfWork, order: Order, decision: SalesOrderDecision) -> None:
        subject = f"order/{order.order_id}"
        if decision.accepted:
            assert decision.sales_order is not None
            if not repo.move_order_through(
                uow,
                order.order_id,
                order.status,
                [(OrderStatus.VALIDATED, "erp"), (OrderStatus.ACCEPTED, "gateway")],
                erp_sales_order_id=decision.sales_order.sales_order_id,
            ):
                return  # decided already by a concurrent validation
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
        self._settle_acknowledgement(uow, order.order_id)

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
                order_status=order.status.value,
            )
        repo.move_order(
            uow, order_id, order.status, OrderStatus.CANCELLED, actor=actor, reason=reason
        )
        release_order(uow, order_id, "cancelled")
        cancel(uow.conn, kind=VALIDATE_TIMER, key=order_id)
        cancel(uow.conn, kind=PENDING_EXPIRY_TIMER, key=order_id)
        self._settle_acknowledgement(uow, order_id)
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


def _awaits_erp(order: Order) -> bool:
    """A received or reserved order the channel has confirmed: the ERP validates it next."""
    return (
        order.status in (OrderStatus.RECEIVED, OrderStatus.RESERVED)
        and order.pending_expires_at is None
    )


def _settle(
    answer: AnswerWriter | None, *, created: bool
) -> Callable[[UnitOfWork, Order], None] | None:
    """The decision's settle callback writing the submission's answer."""
    if answer is None:
        return None
    return lambda uow, order: answer(uow, Submitted(order, created=created))


class OrderNotFound(LookupError):
    """No order with this id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id
