"""SQL of order-to-cash: orders, their lines, history and rejections (process layer tables only)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, or_, select, update

from contracts import (
    Address,
    Customer,
    LineRejection,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    OrderTransition,
    RejectionReason,
    order_total,
)
from gateway_infra.unit_of_work import UnitOfWork
from process_api.fulfilment.models import PackageState
from process_api.tables import (
    order_history,
    order_lines,
    order_rejections,
    orders,
    shipment_packages,
)

# The statements of intake and decision, built once with their values as parameters: building a
# statement anew (and computing its cache key) cost several times more than running it, and an
# order runs about twenty of them.
_FIND_ORDER_ID = select(orders.c.order_id).where(
    orders.c.channel == bindparam("b_channel"),
    orders.c.channel_order_id == bindparam("b_channel_order_id"),
)
_INSERT_ORDER = insert(orders)
_INSERT_LINES = insert(order_lines)
_INSERT_TRANSITION = insert(order_history)
_MOVE_ORDER = update(orders).where(
    orders.c.order_id == bindparam("b_order_id"), orders.c.status == bindparam("b_from_status")
)
_INSERT_REJECTIONS = insert(order_rejections)
_ORDER_HEADER = select(orders).where(orders.c.order_id == bindparam("b_order_id"))
_ORDER_LINES = (
    select(order_lines)
    .where(order_lines.c.order_id == bindparam("b_order_id"))
    .order_by(order_lines.c.position)
)
_ORDER_HISTORY = (
    select(order_history)
    .where(order_history.c.order_id == bindparam("b_order_id"))
    .order_by(order_history.c.id)
)
_ORDER_REJECTIONS = (
    select(order_rejections)
    .where(order_rejections.c.order_id == bindparam("b_order_id"))
    .order_by(order_rejections.c.line_id)
)
_ORDER_PACKAGES = select(shipment_packages.c.order_id, shipment_packages.c.lines).where(
    shipment_packages.c.order_id == bindparam("b_order_id"),
    shipment_packages.c.state == PackageState.CONFIRMED.value,
)


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(10)


def find_order_id(conn: Connection, channel: str, channel_order_id: str) -> str | None:
    return conn.execute(
        _FIND_ORDER_ID, {"b_channel": channel, "b_channel_order_id": channel_order_id}
    ).scalar_one_or_none()


def insert_order(
    uow: UnitOfWork,
    submission: OrderSubmission,
    *,
    actor: str,
    pending_expires_at: datetime | None = None,
) -> str:
    order_id = new_order_id()
    total = order_total(submission.lines, submission.currency)
    uow.conn.execute(
        _INSERT_ORDER,
        {
            "order_id": order_id,
            "channel": submission.channel,
            "channel_order_id": submission.channel_order_id,
            "status": OrderStatus.RECEIVED.value,
            "currency": submission.currency,
            "total": total.amount,
            "customer": _json(submission.customer),
            "shipping_address": _json(submission.shipping_address),
            "placed_at": submission.placed_at,
            "origin_correlation_id": uow.correlation_id,
            "pending_expires_at": pending_expires_at,
            "created_at": uow.now,
            "updated_at": uow.now,
        },
    )
    uow.conn.execute(
        _INSERT_LINES,
        [
            {
                "order_id": order_id,
                "line_id": line.line_id,
                "position": position,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price.amount,
            }
            for position, line in enumerate(submission.lines)
        ],
    )
    record_transition(uow, order_id, None, OrderStatus.RECEIVED, actor=actor)
    uow.known_orders[order_id] = uow.correlation_id
    return order_id


def record_transition(
    uow: UnitOfWork,
    order_id: str,
    from_status: OrderStatus | None,
    to_status: OrderStatus,
    *,
    actor: str,
    reason: str | None = None,
) -> None:
    uow.conn.execute(
        _INSERT_TRANSITION, _transition(uow, order_id, from_status, to_status, actor, reason)
    )


def _transition(
    uow: UnitOfWork,
    order_id: str,
    from_status: OrderStatus | None,
    to_status: OrderStatus,
    actor: str,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value,
        "at": uow.now,
        "actor": actor,
        "correlation_id": uow.correlation_id,
        "reason": reason,
    }


def move_order_through(
    uow: UnitOfWork,
    order_id: str,
    from_status: OrderStatus,
    steps: Sequence[tuple[OrderStatus, str]],
    *,
    reason: str | None = None,
    **values: Any,
) -> bool:
    """move_order through several statuses at once, each step (status, actor) in the history
    (`reason` on the last): one update to the last status, only if the order is still in
    from_status, and the history's rows in one statement. False when someone else moved it."""
    result = uow.conn.execute(
        _MOVE_ORDER,
        {
            "b_order_id": order_id,
            "b_from_status": from_status.value,
            "status": steps[-1][0].value,
            "updated_at": uow.now,
            **values,
        },
    )
    if result.rowcount != 1:
        return False
    befores = [from_status, *(status for status, _ in steps[:-1])]
    reasons = [*(None for _ in steps[:-1]), reason]
    uow.conn.execute(
        _INSERT_TRANSITION,
        [
            _transition(uow, order_id, before, status, actor, why)
            for before, (status, actor), why in zip(befores, steps, reasons, strict=True)
        ],
    )
    return True


def move_order(
    uow: UnitOfWork,
    order_id: str,
    from_status: OrderStatus,
    to_status: OrderStatus,
    *,
    actor: str,
    reason: str | None = None,
    **values: Any,
) -> bool:
    """Change status only if the order is still in from_status; false when someone else moved it."""
    return move_order_through(
        uow, order_id, from_status, [(to_status, actor)], reason=reason, **values
    )


def insert_rejections(uow: UnitOfWork, order_id: str, rejections: list[LineRejection]) -> None:
    uow.conn.execute(
        _INSERT_REJECTIONS,
        [
            {
                "order_id": order_id,
                "line_id": r.line_id,
                "reason": r.reason.value,
                "detail": r.detail,
            }
            for r in rejections
        ],
    )


def end_pending(uow: UnitOfWork, order_id: str) -> bool:
    """The channel confirmed a pending order; false when it was not (or no longer) pending."""
    result = uow.conn.execute(
        update(orders)
        .where(orders.c.order_id == order_id, orders.c.pending_expires_at.is_not(None))
        .values(pending_expires_at=None, updated_at=uow.now)
    )
    return result.rowcount == 1


def erp_sales_order_id(conn: Connection, order_id: str) -> str | None:
    value = conn.execute(
        select(orders.c.erp_sales_order_id).where(orders.c.order_id == order_id)
    ).scalar_one_or_none()
    return None if value is None else str(value)


def load_order(conn: Connection, order_id: str) -> Order | None:
    """One order with its lines, history, rejections and shipped quantities (five statements
    built once; list_orders reads many orders with a statement per kind instead)."""
    by_id = {"b_order_id": order_id}
    header = conn.execute(_ORDER_HEADER, by_id).first()
    if header is None:
        return None
    shipped: dict[str, int] = {}
    _add_shipped(shipped, conn.execute(_ORDER_PACKAGES, by_id))
    return _to_order(
        header,
        conn.execute(_ORDER_LINES, by_id).all(),
        conn.execute(_ORDER_HISTORY, by_id).all(),
        conn.execute(_ORDER_REJECTIONS, by_id).all(),
        shipped,
    )


def list_orders(
    conn: Connection,
    *,
    channel: str | None = None,
    statuses: Sequence[OrderStatus] = (),
    updated_after: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[Order]:
    """Orders by (updated_at, order_id), optionally of one channel and some statuses, starting
    after a position; lines, history and rejections are read in one query each."""
    query = select(orders).order_by(orders.c.updated_at, orders.c.order_id).limit(limit)
    if channel is not None:
        query = query.where(orders.c.channel == channel)
    if statuses:
        query = query.where(orders.c.status.in_([s.value for s in statuses]))
    if updated_after is not None:
        query = query.where(orders.c.updated_at > updated_after)
    if after is not None:
        at, order_id = after
        query = query.where(
            or_(
                orders.c.updated_at > at,
                and_(orders.c.updated_at == at, orders.c.order_id > order_id),
            )
        )
    return _load_full(conn, conn.execute(query).all())


def _load_full(conn: Connection, headers: Sequence[Row[Any]]) -> list[Order]:
    if not headers:
        return []
    ids = [h.order_id for h in headers]
    lines = _grouped(
        conn.execute(
            select(order_lines)
            .where(order_lines.c.order_id.in_(ids))
            .order_by(order_lines.c.order_id, order_lines.c.position)
        ).all()
    )
    history = _grouped(
        conn.execute(
            select(order_history)
            .where(order_history.c.order_id.in_(ids))
            .order_by(order_history.c.order_id, order_history.c.id)
        ).all()
    )
    rejections = _grouped(
        conn.execute(
            select(order_rejections)
            .where(order_rejections.c.order_id.in_(ids))
            .order_by(order_rejections.c.order_id, order_rejections.c.line_id)
        ).all()
    )
    shipped = _shipped_per_line(conn, ids)
    return [
        _to_order(
            h,
            lines.get(h.order_id, []),
            history.get(h.order_id, []),
            rejections.get(h.order_id, []),
            shipped.get(h.order_id, {}),
        )
        for h in headers
    ]


def _shipped_per_line(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Units in packages the warehouse confirmed, per order and line."""
    shipped: dict[str, dict[str, int]] = {}
    for package in conn.execute(
        select(shipment_packages.c.order_id, shipment_packages.c.lines).where(
            shipment_packages.c.order_id.in_(ids),
            shipment_packages.c.state == PackageState.CONFIRMED.value,
        )
    ):
        _add_shipped(shipped.setdefault(package.order_id, {}), [package])
    return shipped


def _add_shipped(per_line: dict[str, int], packages: Iterable[Any]) -> None:
    """Add the units of confirmed packages to an order's shipped quantities per line."""
    for package in packages:
        for line in package.lines:
            per_line[line["line_id"]] = per_line.get(line["line_id"], 0) + int(line["quantity"])


def _grouped(rows: Sequence[Row[Any]]) -> dict[str, list[Row[Any]]]:
    grouped: dict[str, list[Row[Any]]] = {}
    for row in rows:
        grouped.setdefault(row.order_id, []).append(row)
    return grouped


def _to_order(
    header: Row[Any],
    lines: Sequence[Row[Any]],
    history: Sequence[Row[Any]],
    rejections: Sequence[Row[Any]],
    shipped: dict[str, int],
) -> Order:
    currency = header.currency
    return Order(
        order_id=header.order_id,
        channel=header.channel,
        channel_order_id=header.channel_order_id,
        status=OrderStatus(header.status),
        currency=currency,
        customer=Customer.model_validate(header.customer) if header.customer else None,
        shipping_address=(
            Address.model_validate(header.shipping_address) if header.shipping_address else None
        ),
        lines=[
            OrderLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount=line.unit_price, currency=currency),
            )
            for line in lines
        ],
        total=Money(amount=header.total, currency=currency),
        created_at=header.created_at,
        updated_at=header.updated_at,
        pending_expires_at=header.pending_expires_at,
        history=[
            OrderTransition(
                from_status=OrderStatus(h.from_status) if h.from_status else None,
                to_status=OrderStatus(h.to_status),
                at=h.at,
                actor=h.actor,
                correlation_id=h.correlation_id,
                reason=h.reason,
            )
            for h in history
        ],
        rejections=[
            LineRejection(line_id=r.line_id, reason=RejectionReason(r.reason), detail=r.detail)
            for r in rejections
        ],
        shipped_quantities=shipped,
    )


def _json(model: Customer | Address | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json", exclude_none=True)
