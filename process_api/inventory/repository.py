"""SQL of stock reservations and inventory positions, run inside the caller's unit of work.

Order intake reserves in the same transaction as it inserts the order. Every function that
changes a position locks or updates positions in SKU order, after the order's reservation rows,
so concurrent orders never wait on each other in a cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, bindparam, case, delete, select, update

from contracts.exceptions import Severity
from gateway_infra.database import dialect_insert, for_update
from gateway_infra.scheduler import cancel, schedule
from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import open_exception, resolve_exceptions
from process_api.inventory.models import (
    EXPIRY_TIMER,
    SOURCE,
    Consumption,
    Position,
    ReservationLine,
    ReservationNotFound,
    ReservationState,
    Shortfall,
)
from process_api.tables import inventory_positions as positions
from process_api.tables import reservations

__all__ = [
    "consume",
    "due_skus",
    "expire_due",
    "expire_order",
    "order_skus",
    "position",
    "release_order",
    "report_on_hand",
    "report_on_hand_many",
    "reserve_lines",
    "set_expiry",
]

CHUNK = 500
"""SKUs per IN list: far below SQLite's and PostgreSQL's bind parameter limits."""

T = TypeVar("T")
SHORTFALL = "stock_shortfall"
HELD = ReservationState.HELD.value


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- reserving


def reserve_lines(
    uow: UnitOfWork,
    *,
    order_id: str,
    channel: str,
    channel_order_id: str,
    lines: Sequence[tuple[str, str, int]],
    expires_at: datetime | None,
) -> list[Shortfall]:
    """Reserve every line of an order, or none of them; the lines that do not fit come back.

    Idempotent by (channel, channel order id, line): a line reserved before (whatever became of
    its reservation since) is left as it is. With expires_at, the expiry timer is scheduled too.
    """
    requested = [ReservationLine(*line) for line in lines]
    _check_lines(requested)
    if not requested:
        return []
    conn, now = uow.conn, uow.now
    claimed = _claim_keys(uow, order_id, channel, channel_order_id, requested, expires_at)
    new_lines = [line for line in requested if line.line_id in claimed]
    if not new_lines:
        return []
    totals: dict[str, int] = defaultdict(int)
    for line in new_lines:
        totals[line.sku] += line.quantity
    skus = sorted(totals)
    # Lock the positions in SKU order and decide for the whole order before changing any.
    lock = _LOCK_POSITIONS if conn.dialect.name == "sqlite" else _LOCK_POSITIONS_FOR_UPDATE
    free = {row.sku: row.on_hand - row.reserved for row in conn.execute(lock, {"b_skus": skus})}
    shortfalls = _allocate(new_lines, free)
    if shortfalls:
        conn.execute(delete(reservations).where(reservations.c.id.in_(claimed.values())))
        return shortfalls
    for sku in skus:
        quantity = totals[sku]
        # Conditional even under the lock: reserved never passes on-hand, whatever happens.
        result = conn.execute(_RESERVE_UNITS, {"b_sku": sku, "b_quantity": quantity, "b_now": now})
        if result.rowcount != 1:
            raise RuntimeError(f"position of {sku} changed under its row lock")
    if expires_at is not None:
        _schedule_expiry(uow, order_id, expires_at)
    return []


# reserve_lines' statements, built once with the values as parameters (building them anew for
# every order cost more than running them). SQLite's write transactions are exclusive already.
_LOCK_POSITIONS = (
    select(positions.c.sku, positions.c.on_hand, positions.c.reserved)
    .where(positions.c.sku.in_(bindparam("b_skus", expanding=True)))
    .order_by(positions.c.sku)
)
_LOCK_POSITIONS_FOR_UPDATE = _LOCK_POSITIONS.with_for_update()
_RESERVE_UNITS = (
    update(positions)
    .where(
        positions.c.sku == bindparam("b_sku"),
        positions.c.on_hand - positions.c.reserved >= bindparam("b_quantity"),
    )
    .values(reserved=positions.c.reserved + bindparam("b_quantity"), updated_at=bindparam("b_now"))
)


def _check_lines(lines: Sequence[ReservationLine]) -> None:
    seen: set[str] = set()
    for line in lines:
        if line.quantity <= 0:
            raise ValueError(f"line {line.line_id!r} reserves {line.quantity} units; must be > 0")
        if line.line_id in seen:
            raise ValueError(f"line {line.line_id!r} appears twice")
        seen.add(line.line_id)


def _claim_keys(
    uow: UnitOfWork,
    order_id: str,
    channel: str,
    channel_order_id: str,
    lines: Sequence[ReservationLine],
    expires_at: datetime | None,
) -> dict[str, int]:
    """Insert the reservation rows of lines not reserved before; {line_id: row id} of those.

    A concurrent reservation of the same order waits here on the unique key, then finds it taken.
    """
    conn, now = uow.conn, uow.now
    rows = [
        {
            "channel": channel,
            "channel_order_id": channel_order_id,
            "line_id": line.line_id,
            "order_id": order_id,
            "sku": line.sku,
            "quantity": line.quantity,
            "consumed": 0,
            "state": HELD,
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        for line in lines
    ]
    return {row.line_id: row.id for row in conn.execute(_claim_insert(conn), rows)}


_CLAIM_INSERTS: dict[str, Any] = {}


def _claim_insert(conn: Connection) -> Any:
    """_claim_keys' statement, built once per dialect with the rows as parameters: with the rows
    written into it (multi-row VALUES) SQLAlchemy compiled it anew for every order."""
    dialect = conn.dialect.name
    stmt = _CLAIM_INSERTS.get(dialect)
    if stmt is None:
        stmt = (
            dialect_insert(conn, reservations)
            .on_conflict_do_nothing(
                index_elements=[
                    reservations.c.channel,
                    reservations.c.channel_order_id,
                    reservations.c.line_id,
                ]
            )
            .returning(reservations.c.line_id, reservations.c.id)
        )
        _CLAIM_INSERTS[dialect] = stmt
    return stmt


def _allocate(lines: Sequence[ReservationLine], free: Mapping[str, int]) -> list[Shortfall]:
    """Lines in order against each SKU's free units; those that no longer fit fall short."""
    remaining = {sku: max(units, 0) for sku, units in free.items()}
    shortfalls: list[Shortfall] = []
    for line in lines:
        left = remaining.get(line.sku, 0)
        if line.quantity <= left:
            remaining[line.sku] = left - line.quantity
        else:
            shortfalls.append(Shortfall(line.line_id, line.sku, line.quantity, left))
    return shortfalls


# ---------------------------------------------------------------- expiry


def _schedule_expiry(uow: UnitOfWork, order_id: str, expires_at: datetime) -> None:
    schedule(
        uow.conn,
        kind=EXPIRY_TIMER,
        key=order_id,
        due_at=expires_at,
        now=uow.now,
        payload={"order_id": order_id},
    )


def set_expiry(uow: UnitOfWork, order_id: str, expires_at: datetime | None) -> int:
    """Move the expiry of an order's held reservations; None keeps them until released or shipped
    (a pending channel order that became a real one). Returns how many lines it moved."""
    result = uow.conn.execute(
        update(reservations)
        .where(reservations.c.order_id == order_id, reservations.c.state == HELD)
        .values(expires_at=expires_at, updated_at=uow.now)
    )
    if expires_at is None or not result.rowcount:
        cancel(uow.conn, kind=EXPIRY_TIMER, key=order_id)
    else:
        _schedule_expiry(uow, order_id, expires_at)
    return int(result.rowcount)


def expire_order(uow: UnitOfWork, order_id: str) -> int:
    """Release the order's held reservations whose expiry has come (the expiry timer's work)."""
    return _give_back(
        uow,
        (
            reservations.c.order_id == order_id,
            reservations.c.expires_at <= uow.now,
        ),
        ReservationState.EXPIRED,
        "expired",
    )


def expire_due(uow: UnitOfWork, *, limit: int = 1000) -> int:
    """Release held reservations whose expiry has come, at most limit lines; how many it did."""
    return _give_back(
        uow,
        (reservations.c.expires_at.is_not(None), reservations.c.expires_at <= uow.now),
        ReservationState.EXPIRED,
        "expired",
        limit=limit,
    )


# ---------------------------------------------------------------- release and consumption


def release_order(uow: UnitOfWork, order_id: str, reason: str) -> int:
    """Give back every held reservation of the order (cancel, rejection); units released."""
    lines = _give_back(
        uow, (reservations.c.order_id == order_id,), ReservationState.RELEASED, reason
    )
    cancel(uow.conn, kind=EXPIRY_TIMER, key=order_id)
    return lines


def _give_back(
    uow: UnitOfWork,
    conditions: Iterable[ColumnElement[bool]],
    state: ReservationState,
    reason: str,
    *,
    limit: int | None = None,
) -> int:
    """Move held reservations to state, returning their open units to the positions.

    Reservation rows are locked first (by id), then positions in SKU order, like reserve_lines.
    """
    conn, now = uow.conn, uow.now
    query = (
        select(
            reservations.c.id,
            reservations.c.order_id,
            reservations.c.channel,
            reservations.c.channel_order_id,
            reservations.c.line_id,
            reservations.c.sku,
            reservations.c.quantity,
            reservations.c.consumed,
        )
        .where(reservations.c.state == HELD, *conditions)
        .order_by(reservations.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(for_update(conn, query)).all()
    if not rows:
        return 0
    open_units: dict[str, int] = defaultdict(int)
    per_order: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        open_units[row.sku] += row.quantity - row.consumed
        per_order[row.order_id].append(row)
    for sku in sorted(open_units):
        if open_units[sku]:
            conn.execute(
                update(positions)
                .where(positions.c.sku == sku)
                .values(reserved=positions.c.reserved - open_units[sku], updated_at=now)
            )
    for ids in chunked([row.id for row in rows]):
        conn.execute(
            update(reservations)
            .where(reservations.c.id.in_(ids))
            .values(state=state.value, updated_at=now)
        )
    for order_id, order_rows in per_order.items():
        first = order_rows[0]
        uow.emit(
            f"inventory.reservation.{state.value}",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=first.channel,
            data={
                "order_id": order_id,
                "channel_order_id": first.channel_order_id,
                "reason": reason,
                "lines": [
                    {"line_id": r.line_id, "sku": r.sku, "quantity": r.quantity - r.consumed}
                    for r in order_rows
                ],
            },
        )
    if state is ReservationState.EXPIRED:
        _cancel_finished_timers(conn, list(per_order))
    return len(rows)


def _cancel_finished_timers(conn: Connection, order_ids: Sequence[str]) -> None:
    still_held: set[str] = set()
    for ids in chunked(order_ids):
        still_held.update(
            conn.execute(
                select(reservations.c.order_id)
                .where(reservations.c.order_id.in_(ids), reservations.c.state == HELD)
                .distinct()
            ).scalars()
        )
    for order_id in order_ids:
        if order_id not in still_held:
            cancel(conn, kind=EXPIRY_TIMER, key=order_id)


def consume(uow: UnitOfWork, order_id: str, line_id: str, quantity: int) -> Consumption:
    """A shipment of quantity units of an order line: out of its reservation and out of on-hand.

    Never refused: units shipped beyond the open reservation still leave on-hand (down to 0);
    the WMS confirms on-hand later. Not idempotent: the caller records each package once.
    """
    if quantity <= 0:
        raise ValueError(f"a shipment of {quantity} units; must be > 0")
    conn, now = uow.conn, uow.now
    row = conn.execute(
        for_update(
            conn,
            select(
                reservations.c.id,
                reservations.c.sku,
                reservations.c.quantity,
                reservations.c.consumed,
                reservations.c.state,
            ).where(reservations.c.order_id == order_id, reservations.c.line_id == line_id),
        )
    ).first()
    if row is None:
        raise ReservationNotFound(order_id, line_id)
    open_units = row.quantity - row.consumed if row.state == HELD else 0
    taken = min(quantity, open_units)
    fully = row.state == ReservationState.CONSUMED.value or (
        row.state == HELD and row.consumed + taken == row.quantity
    )
    if taken:
        conn.execute(
            update(reservations)
            .where(reservations.c.id == row.id)
            .values(
                consumed=reservations.c.consumed + taken,
                state=ReservationState.CONSUMED.value if fully else HELD,
                updated_at=now,
            )
        )
    conn.execute(
        update(positions)
        .where(positions.c.sku == row.sku)
        .values(
            reserved=positions.c.reserved - taken,
            on_hand=case(
                (positions.c.on_hand >= quantity, positions.c.on_hand - quantity), else_=0
            ),
            updated_at=now,
        )
    )
    return Consumption(
        order_id=order_id,
        line_id=line_id,
        sku=row.sku,
        consumed=taken,
        beyond_reservation=quantity - taken,
        fully_consumed=fully,
    )


# ---------------------------------------------------------------- on-hand from the WMS


def report_on_hand(uow: UnitOfWork, sku: str, on_hand: int, as_of: datetime) -> Position:
    """The WMS's count of one SKU; see report_on_hand_many."""
    report_on_hand_many(uow, {sku: on_hand}, as_of)
    return position(uow.conn, sku)


def report_on_hand_many(uow: UnitOfWork, counts: Mapping[str, int], as_of: datetime) -> list[str]:
    """Take the WMS's on-hand counts as they are (never refused) and return the SKUs changed.

    A count older than the one already stored is ignored (it arrived out of order). A count
    below what is reserved emits inventory.shortfall (when the missing quantity changes).
    """
    for sku, count in counts.items():
        if count < 0:
            raise ValueError(f"on-hand of {sku} reported as {count}; must be >= 0")
    conn, now = uow.conn, uow.now
    changed: list[str] = []
    for skus in chunked(sorted(counts)):
        conn.execute(
            dialect_insert(conn, positions).on_conflict_do_nothing(
                index_elements=[positions.c.sku]
            ),
            [
                {"sku": sku, "on_hand": 0, "reserved": 0, "on_hand_as_of": None, "updated_at": now}
                for sku in skus
            ],
        )
        rows = conn.execute(
            for_update(
                conn,
                select(positions).where(positions.c.sku.in_(skus)).order_by(positions.c.sku),
            )
        ).all()
        updates: list[dict[str, Any]] = []
        for row in rows:
            if row.on_hand_as_of is not None and as_of < row.on_hand_as_of:
                continue
            count = counts[row.sku]
            updates.append({"k_sku": row.sku, "k_on_hand": count})
            if count != row.on_hand:
                changed.append(row.sku)
            missing = max(row.reserved - count, 0)
            was_missing = max(row.reserved - row.on_hand, 0)
            if missing and missing != was_missing:
                uow.emit(
                    "inventory.shortfall",
                    source=SOURCE,
                    subject=f"inventory/{row.sku}",
                    data={
                        "sku": row.sku,
                        "on_hand": count,
                        "reserved": row.reserved,
                        "missing": missing,
                    },
                )
                open_exception(
                    uow,
                    workflow="inventory_sync",
                    code=SHORTFALL,
                    subject=f"inventory/{row.sku}",
                    detail=(
                        f"the warehouse counts {count} of {row.sku} but {row.reserved} are "
                        f"reserved for orders: {missing} missing; every channel is offered 0"
                    ),
                    severity=Severity.HIGH,
                    object_ids={"sku": row.sku},
                )
            elif was_missing and not missing:
                resolve_exceptions(
                    uow,
                    subject=f"inventory/{row.sku}",
                    codes=[SHORTFALL],
                    note=f"the warehouse now counts {count}, enough for {row.reserved} reserved",
                )
        if updates:
            conn.execute(
                update(positions)
                .where(positions.c.sku == bindparam("k_sku"))
                .values(
                    on_hand=bindparam("k_on_hand"),
                    on_hand_as_of=as_of,
                    updated_at=now,
                ),
                updates,
            )
    return changed


# ---------------------------------------------------------------- reading


def position(conn: Connection, sku: str) -> Position:
    """The SKU's position; a SKU the WMS never reported has on-hand 0."""
    row = conn.execute(select(positions).where(positions.c.sku == sku)).first()
    if row is None:
        return Position(sku=sku, on_hand=0, reserved=0)
    return Position(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        on_hand_as_of=row.on_hand_as_of,
        updated_at=row.updated_at,
    )


def order_skus(conn: Connection, order_id: str) -> list[str]:
    """The SKUs an order reserved (in any state), for publishing what its release changed."""
    return list(
        conn.execute(
            select(reservations.c.sku)
            .where(reservations.c.order_id == order_id)
            .distinct()
            .order_by(reservations.c.sku)
        ).scalars()
    )


def due_skus(conn: Connection, now: datetime) -> list[str]:
    """The SKUs of held reservations whose expiry has come."""
    return list(
        conn.execute(
            select(reservations.c.sku)
            .where(
                reservations.c.state == HELD,
                reservations.c.expires_at.is_not(None),
                reservations.c.expires_at <= now,
            )
            .distinct()
            .order_by(reservations.c.sku)
        ).scalars()
    )
