"""SQL of returns, their lines, history and refunds, run inside the caller's unit of work."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select, update

from contracts import CreditNoteLine, Money
from contracts.channel import RefundTiming
from contracts.refund import Refund, RefundKind, RefundState
from contracts.returns import (
    ChannelRefund,
    InspectionGrade,
    InspectionResult,
    Return,
    ReturnedLine,
    ReturnReceiptLine,
    ReturnRefusal,
    ReturnStatus,
    ReturnTransition,
    WaitingStep,
)
from gateway_infra.database import for_update
from gateway_infra.unit_of_work import UnitOfWork
from process_api.tables import return_history, return_lines, return_refunds, returns

__all__ = [
    "LineRow",
    "RefundRow",
    "ReturnRow",
    "credited_by_invoice_line",
    "find_return_id",
    "insert_refund",
    "insert_return",
    "list_returns",
    "load_return",
    "lock_return",
    "move_return",
    "new_return_id",
    "record_transition",
    "returned_quantities",
    "returns_created_between",
    "to_contract",
    "update_line",
    "update_refund",
    "update_return",
]

REFUSED = ReturnStatus.REFUSED.value


def new_return_id() -> str:
    return "ret_" + secrets.token_hex(10)


def refund_id_of(return_id: str, kind: RefundKind) -> str:
    """Each kind of refund happens at most once per return: its id (and its ERP references)
    follow from the return and the kind."""
    return f"{return_id}-{kind.value}"


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class LineRow:
    line_id: str
    position: int
    sku: str
    quantity: int
    unit_price: Decimal | None
    reason: str
    refund_timing: RefundTiming | None
    quantity_received: int | None
    inspections: list[InspectionResult]

    @property
    def value(self) -> Decimal:
        """Announced units at the order's price."""
        return (self.unit_price or Decimal(0)) * self.quantity

    def units(self, grade: InspectionGrade) -> int:
        return sum(r.quantity for r in self.inspections if r.grade is grade)

    @property
    def missing(self) -> int:
        """Announced units that did not arrive, or arrived as an empty box (graded missing)."""
        received = self.quantity_received or 0
        return self.quantity - received + self.units(InspectionGrade.MISSING)


@dataclass(frozen=True)
class RefundRow:
    refund_id: str
    return_id: str
    order_id: str
    kind: RefundKind
    state: RefundState
    currency: str
    amount: Decimal
    lines: list[dict[str, Any]]
    credit_notes: list[dict[str, Any]]
    requested_by: str
    requested_at: datetime
    posted_at: datetime | None

    def line_amounts(self) -> dict[str, tuple[int, Decimal]]:
        return {
            str(line["line_id"]): (int(line["quantity"]), Decimal(str(line["amount"])))
            for line in self.lines
        }

    def credited(self) -> dict[str, tuple[int, Decimal]]:
        """Units and amount its posted credit notes credited, per order line."""
        totals: dict[str, tuple[int, Decimal]] = {}
        for note in self.credit_notes:
            for line in note["lines"]:
                q, a = totals.get(str(line["line_id"]), (0, Decimal(0)))
                totals[str(line["line_id"])] = (
                    q + int(line["quantity"]),
                    a + Decimal(str(line["amount"])),
                )
        return totals

    @property
    def credited_total(self) -> Decimal:
        return sum((Decimal(str(note["total"])) for note in self.credit_notes), Decimal(0))


@dataclass(frozen=True)
class ReturnRow:
    return_id: str
    order_id: str
    channel: str
    channel_return_id: str
    status: ReturnStatus
    currency: str
    value: Decimal
    refusals: list[ReturnRefusal]
    warehouse: str | None
    pending_receipt: dict[str, Any] | None
    pending_inspection: dict[str, Any] | None
    receipt_id: str | None
    received_at: datetime | None
    inspected_at: datetime | None
    channel_refund: ChannelRefund | None
    created_at: datetime
    updated_at: datetime
    lines: list[LineRow]
    refunds: list[RefundRow]
    history: list[ReturnTransition] = field(default_factory=list)

    def line(self, line_id: str) -> LineRow | None:
        return next((line for line in self.lines if line.line_id == line_id), None)

    def refund(self, kind: RefundKind) -> RefundRow | None:
        return next((r for r in self.refunds if r.kind is kind), None)

    def ours(self) -> list[RefundRow]:
        """Refunds we decided (policy or approval), not the channel's."""
        return [r for r in self.refunds if r.kind is not RefundKind.CHANNEL]

    def refunded_units(self, line_id: str) -> tuple[int, Decimal]:
        """Units and amount of the line our refunds cover."""
        units, amount = 0, Decimal(0)
        for refund in self.ours():
            q, a = refund.line_amounts().get(line_id, (0, Decimal(0)))
            units, amount = units + q, amount + a
        return units, amount


# ---------------------------------------------------------------- writing


def find_return_id(conn: Connection, channel: str, channel_return_id: str) -> str | None:
    return conn.execute(
        select(returns.c.return_id).where(
            returns.c.channel == channel, returns.c.channel_return_id == channel_return_id
        )
    ).scalar_one_or_none()


def insert_return(
    uow: UnitOfWork,
    *,
    return_id: str,
    order_id: str,
    channel: str,
    channel_return_id: str,
    currency: str,
    lines: Sequence[dict[str, Any]],
    refusals: Sequence[ReturnRefusal],
    actor: str,
) -> None:
    """Record a requested return with its lines (each: line_id, sku, quantity, reason,
    unit_price, refund_timing)."""
    value = sum(
        (Decimal(line["unit_price"] or 0) * int(line["quantity"]) for line in lines), Decimal(0)
    )
    uow.conn.execute(
        insert(returns).values(
            return_id=return_id,
            order_id=order_id,
            channel=channel,
            channel_return_id=channel_return_id,
            status=ReturnStatus.REQUESTED.value,
            currency=currency,
            value=value,
            refusals=[r.model_dump(mode="json") for r in refusals],
            origin_correlation_id=uow.correlation_id,
            created_at=uow.now,
            updated_at=uow.now,
        )
    )
    uow.conn.execute(
        insert(return_lines),
        [
            {
                "return_id": return_id,
                "line_id": line["line_id"],
                "position": position,
                "sku": line["sku"],
                "quantity": line["quantity"],
                "unit_price": line["unit_price"],
                "reason": line["reason"],
                "refund_timing": line["refund_timing"],
                "quantity_received": None,
                "inspections": None,
            }
            for position, line in enumerate(lines)
        ],
    )
    record_transition(uow, return_id, None, ReturnStatus.REQUESTED, actor=actor)


def record_transition(
    uow: UnitOfWork,
    return_id: str,
    from_status: ReturnStatus | None,
    to_status: ReturnStatus,
    *,
    actor: str,
    reason: str | None = None,
) -> None:
    uow.conn.execute(
        insert(return_history).values(
            return_id=return_id,
            from_status=None if from_status is None else from_status.value,
            to_status=to_status.value,
            at=uow.now,
            actor=actor,
            correlation_id=uow.correlation_id,
            reason=reason,
        )
    )


def move_return(
    uow: UnitOfWork,
    return_id: str,
    from_status: ReturnStatus,
    to_status: ReturnStatus,
    *,
    actor: str,
    reason: str | None = None,
    **values: Any,
) -> bool:
    """Change status only if the return is still in from_status; false when it is not."""
    result = uow.conn.execute(
        update(returns)
        .where(returns.c.return_id == return_id, returns.c.status == from_status.value)
        .values(status=to_status.value, updated_at=uow.now, **values)
    )
    if result.rowcount != 1:
        return False
    record_transition(uow, return_id, from_status, to_status, actor=actor, reason=reason)
    return True


def update_return(uow: UnitOfWork, return_id: str, **values: Any) -> None:
    uow.conn.execute(
        update(returns).where(returns.c.return_id == return_id).values(updated_at=uow.now, **values)
    )


def update_line(uow: UnitOfWork, return_id: str, line_id: str, **values: Any) -> None:
    uow.conn.execute(
        update(return_lines)
        .where(return_lines.c.return_id == return_id, return_lines.c.line_id == line_id)
        .values(**values)
    )


def insert_refund(
    uow: UnitOfWork,
    ret: ReturnRow,
    kind: RefundKind,
    lines: Sequence[CreditNoteLine],
    *,
    state: RefundState,
    actor: str,
) -> str:
    refund_id = refund_id_of(ret.return_id, kind)
    uow.conn.execute(
        insert(return_refunds).values(
            refund_id=refund_id,
            return_id=ret.return_id,
            order_id=ret.order_id,
            kind=kind.value,
            state=state.value,
            currency=ret.currency,
            amount=sum((line.amount.amount for line in lines), Decimal(0)),
            lines=[
                {
                    "line_id": line.line_id,
                    "quantity": line.quantity,
                    "amount": str(line.amount.amount),
                }
                for line in lines
            ],
            credit_notes=[],
            requested_by=actor,
            requested_at=uow.now,
            posted_at=None,
        )
    )
    return refund_id


def update_refund(uow: UnitOfWork, refund_id: str, **values: Any) -> None:
    uow.conn.execute(
        update(return_refunds).where(return_refunds.c.refund_id == refund_id).values(**values)
    )


# ---------------------------------------------------------------- reading


def lock_return(conn: Connection, return_id: str) -> ReturnRow | None:
    """The return, its row locked for the rest of the transaction (PostgreSQL; SQLite's write
    transactions are exclusive already)."""
    found = conn.execute(
        for_update(conn, select(returns.c.return_id).where(returns.c.return_id == return_id))
    ).scalar_one_or_none()
    return None if found is None else load_return(conn, return_id)


def load_return(conn: Connection, return_id: str) -> ReturnRow | None:
    header = conn.execute(select(returns).where(returns.c.return_id == return_id)).first()
    if header is None:
        return None
    return _load_full(conn, [header])[0]


def list_returns(
    conn: Connection,
    *,
    channel: str | None = None,
    statuses: Sequence[ReturnStatus] = (),
    order_id: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[ReturnRow]:
    """Returns by (updated_at, return_id), filtered, starting after a position."""
    query = select(returns).order_by(returns.c.updated_at, returns.c.return_id).limit(limit)
    if channel is not None:
        query = query.where(returns.c.channel == channel)
    if statuses:
        query = query.where(returns.c.status.in_([s.value for s in statuses]))
    if order_id is not None:
        query = query.where(returns.c.order_id == order_id)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                returns.c.updated_at > at,
                and_(returns.c.updated_at == at, returns.c.return_id > last_id),
            )
        )
    return _load_full(conn, conn.execute(query).all())


def returns_created_between(
    conn: Connection, start: datetime, end: datetime, channel: str | None
) -> list[ReturnRow]:
    query = (
        select(returns)
        .where(returns.c.created_at >= start, returns.c.created_at < end)
        .order_by(returns.c.created_at, returns.c.return_id)
    )
    if channel is not None:
        query = query.where(returns.c.channel == channel)
    return _load_full(conn, conn.execute(query).all())


def returned_quantities(conn: Connection, order_id: str) -> dict[str, int]:
    """Units of each order line on the order's returns that were not refused."""
    rows = conn.execute(
        select(return_lines.c.line_id, return_lines.c.quantity)
        .join(returns, returns.c.return_id == return_lines.c.return_id)
        .where(returns.c.order_id == order_id, returns.c.status != REFUSED)
    )
    totals: dict[str, int] = defaultdict(int)
    for line_id, quantity in rows:
        totals[line_id] += int(quantity)
    return dict(totals)


def credited_by_invoice_line(
    conn: Connection, order_id: str
) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Units and amount the order's returns had the ERP credit so far, per (invoice, line)."""
    totals: dict[tuple[str, str], tuple[int, Decimal]] = {}
    rows = conn.execute(
        select(return_refunds.c.credit_notes).where(return_refunds.c.order_id == order_id)
    ).scalars()
    for notes in rows:
        for note in notes or []:
            for line in note["lines"]:
                key = (str(note["invoice_id"]), str(line["line_id"]))
                units, amount = totals.get(key, (0, Decimal(0)))
                totals[key] = (
                    units + int(line["quantity"]),
                    amount + Decimal(str(line["amount"])),
                )
    return totals


def _load_full(conn: Connection, headers: Sequence[Row[Any]]) -> list[ReturnRow]:
    if not headers:
        return []
    ids = [h.return_id for h in headers]
    lines = _grouped(
        conn.execute(
            select(return_lines)
            .where(return_lines.c.return_id.in_(ids))
            .order_by(return_lines.c.return_id, return_lines.c.position)
        ).all()
    )
    history = _grouped(
        conn.execute(
            select(return_history)
            .where(return_history.c.return_id.in_(ids))
            .order_by(return_history.c.return_id, return_history.c.id)
        ).all()
    )
    refunds = _grouped(
        conn.execute(
            select(return_refunds)
            .where(return_refunds.c.return_id.in_(ids))
            .order_by(return_refunds.c.return_id, return_refunds.c.requested_at)
        ).all()
    )
    return [
        _to_row(
            h,
            lines.get(h.return_id, []),
            history.get(h.return_id, []),
            refunds.get(h.return_id, []),
        )
        for h in headers
    ]


def _grouped(rows: Iterable[Row[Any]]) -> dict[str, list[Row[Any]]]:
    grouped: dict[str, list[Row[Any]]] = {}
    for row in rows:
        grouped.setdefault(row.return_id, []).append(row)
    return grouped


def _to_row(
    header: Row[Any],
    lines: Sequence[Row[Any]],
    history: Sequence[Row[Any]],
    refunds: Sequence[Row[Any]],
) -> ReturnRow:
    currency = header.currency
    channel_refund = (
        None
        if header.channel_refund_id is None
        else ChannelRefund(
            channel_refund_id=header.channel_refund_id,
            amount=Money(amount=header.channel_refund_amount, currency=currency),
            refunded_at=header.channel_refunded_at,
        )
    )
    return ReturnRow(
        return_id=header.return_id,
        order_id=header.order_id,
        channel=header.channel,
        channel_return_id=header.channel_return_id,
        status=ReturnStatus(header.status),
        currency=currency,
        value=Decimal(header.value),
        refusals=[ReturnRefusal.model_validate(r) for r in header.refusals or []],
        warehouse=header.warehouse,
        pending_receipt=header.pending_receipt,
        pending_inspection=header.pending_inspection,
        receipt_id=header.receipt_id,
        received_at=header.received_at,
        inspected_at=header.inspected_at,
        channel_refund=channel_refund,
        created_at=header.created_at,
        updated_at=header.updated_at,
        lines=[
            LineRow(
                line_id=line.line_id,
                position=line.position,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=None if line.unit_price is None else Decimal(line.unit_price),
                reason=line.reason,
                refund_timing=None
                if line.refund_timing is None
                else RefundTiming(line.refund_timing),
                quantity_received=line.quantity_received,
                inspections=[InspectionResult.model_validate(r) for r in line.inspections or []],
            )
            for line in lines
        ],
        refunds=[
            RefundRow(
                refund_id=r.refund_id,
                return_id=r.return_id,
                order_id=r.order_id,
                kind=RefundKind(r.kind),
                state=RefundState(r.state),
                currency=r.currency,
                amount=Decimal(r.amount),
                lines=list(r.lines),
                credit_notes=list(r.credit_notes or []),
                requested_by=r.requested_by,
                requested_at=r.requested_at,
                posted_at=r.posted_at,
            )
            for r in refunds
        ],
        history=[
            ReturnTransition(
                from_status=None if h.from_status is None else ReturnStatus(h.from_status),
                to_status=ReturnStatus(h.to_status),
                at=h.at,
                actor=h.actor,
                correlation_id=h.correlation_id,
                reason=h.reason,
            )
            for h in history
        ],
    )


def to_contract(row: ReturnRow) -> Return:
    """The canonical return of a stored one."""
    currency = row.currency
    waiting: list[WaitingStep] = []
    if row.pending_receipt is not None:
        waiting.append(WaitingStep.RECEIPT)
    if row.pending_inspection is not None:
        waiting.append(WaitingStep.INSPECTION)
    if any(r.state is RefundState.PENDING for r in row.refunds):
        waiting.append(WaitingStep.CREDIT_NOTE)
    return Return(
        return_id=row.return_id,
        order_id=row.order_id,
        channel=row.channel,
        channel_return_id=row.channel_return_id,
        status=row.status,
        currency=currency,
        lines=[
            ReturnedLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                reason=line.reason,
                unit_price=None
                if line.unit_price is None
                else Money(amount=line.unit_price, currency=currency),
                refund_timing=line.refund_timing,
            )
            for line in row.lines
        ],
        value=Money(amount=row.value, currency=currency),
        refusals=row.refusals,
        receipts=[
            ReturnReceiptLine(line_id=line.line_id, quantity_received=line.quantity_received)
            for line in row.lines
            if line.quantity_received is not None
        ],
        inspections=[result for line in row.lines for result in line.inspections],
        refunds=[_refund(row, refund) for refund in row.refunds],
        channel_refund=row.channel_refund,
        waiting_for=waiting,
        history=row.history,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refund(row: ReturnRow, refund: RefundRow) -> Refund:
    currency = refund.currency
    return Refund(
        refund_id=refund.refund_id,
        return_id=row.return_id,
        order_id=row.order_id,
        kind=refund.kind,
        state=refund.state,
        amount=Money(amount=refund.amount, currency=currency),
        lines=[
            CreditNoteLine(
                line_id=str(line["line_id"]),
                quantity=int(line["quantity"]),
                amount=Money(amount=Decimal(str(line["amount"])), currency=currency),
            )
            for line in refund.lines
        ],
        credit_note_ids=[str(note["credit_note_id"]) for note in refund.credit_notes],
        channel_refunded=refund.kind is RefundKind.CHANNEL,
        requested_at=refund.requested_at,
        issued_at=refund.posted_at,
    )
