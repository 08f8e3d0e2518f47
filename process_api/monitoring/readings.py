"""What the ops console's channel overview and the business figures of /metrics both read, one
query each, so the two show the same numbers: orders by channel and state, the orders awaiting
acknowledgement, the inventory sync state per channel, and the unresolved exceptions.

Each caller shapes them its own way (a page per channel; Prometheus families), and applies its own
deadline to the orders awaiting acknowledgement (docs/metrics.md, docs/ops-console.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from contracts import Money
from contracts.exceptions import ExceptionStatus
from contracts.order import OrderStatus
from gateway_infra.tables import timers
from process_api.order_to_cash.service import ACK_DEADLINE_TIMER
from process_api.tables import exceptions, orders, published_availability

AWAITING_ACKNOWLEDGEMENT = (OrderStatus.RECEIVED.value, OrderStatus.RESERVED.value)
UNRESOLVED = (ExceptionStatus.OPEN.value, ExceptionStatus.ACKNOWLEDGED.value)


@dataclass(frozen=True)
class OrdersInState:
    channel: str
    status: str
    count: int
    oldest_change: datetime
    """When the order longest in this state got there."""


def orders_by_state(conn: Connection) -> list[OrdersInState]:
    """How many orders each channel has in each state, by channel and state."""
    return [
        OrdersInState(channel, status, count, oldest)
        for channel, status, count, oldest in conn.execute(
            select(orders.c.channel, orders.c.status, func.count(), func.min(orders.c.updated_at))
            .group_by(orders.c.channel, orders.c.status)
            .order_by(orders.c.channel, orders.c.status)
        )
    ]


@dataclass(frozen=True)
class AwaitingAcknowledgement:
    order_id: str
    channel: str
    channel_order_id: str
    status: str
    due_since: datetime
    """When the acknowledgement became due."""
    total: Money
    workflow_deadline: datetime | None
    """The deadline the order workflow set when it started validating, while its warning timer
    has not fired."""


def awaiting_acknowledgement(conn: Connection) -> list[AwaitingAcknowledgement]:
    """Every order the channel still waits to hear about: received or reserved, and not held as
    a pending channel order.

    An order's row changes only when its status moves or its pending hold ends, so while it
    waits its `updated_at` is when the acknowledgement became due: when the gateway recorded
    it, or when the channel confirmed it after holding it as pending (the order workflow's own
    deadline counts from the same moment)."""
    rows = conn.execute(
        select(
            orders.c.order_id,
            orders.c.channel,
            orders.c.channel_order_id,
            orders.c.status,
            orders.c.updated_at,
            orders.c.total,
            orders.c.currency,
            timers.c.payload,
        )
        .select_from(orders)
        .outerjoin(
            timers, (timers.c.kind == ACK_DEADLINE_TIMER) & (timers.c.key == orders.c.order_id)
        )
        .where(orders.c.status.in_(AWAITING_ACKNOWLEDGEMENT), orders.c.pending_expires_at.is_(None))
        .order_by(orders.c.order_id)
    )
    found = []
    for r in rows:
        deadline = None
        if isinstance(r.payload, dict) and isinstance(r.payload.get("deadline"), str):
            deadline = datetime.fromisoformat(r.payload["deadline"])
        found.append(
            AwaitingAcknowledgement(
                r.order_id,
                r.channel,
                r.channel_order_id,
                r.status,
                r.updated_at,
                Money(amount=r.total, currency=r.currency),
                deadline,
            )
        )
    return found


@dataclass(frozen=True)
class InventorySync:
    channel: str
    published: int
    """SKUs whose availability was published to the channel."""
    unconfirmed: int
    """Of those, the ones the channel has not confirmed yet."""
    oldest_unconfirmed: datetime | None
    last_published: datetime | None


def inventory_sync(conn: Connection) -> list[InventorySync]:
    """Per channel: published availability, how much of it is unconfirmed and since when."""
    pa = published_availability.c
    return [
        InventorySync(channel, published, published - confirmed, oldest, last)
        for channel, published, confirmed, oldest, last in conn.execute(
            select(
                pa.channel,
                func.count(),
                func.count(pa.confirmed_at),
                func.min(pa.published_at).filter(pa.confirmed_at.is_(None)),
                func.max(pa.published_at),
            )
            .group_by(pa.channel)
            .order_by(pa.channel)
        )
    ]


@dataclass(frozen=True)
class OpenExceptions:
    channel: str | None
    severity: str
    team: str | None
    count: int


def open_exceptions(conn: Connection) -> list[OpenExceptions]:
    """Unresolved (open or acknowledged) exceptions by channel, severity and owner team."""
    return [
        OpenExceptions(channel, severity, team, count)
        for channel, severity, team, count in conn.execute(
            select(
                exceptions.c.channel, exceptions.c.severity, exceptions.c.owner_team, func.count()
            )
            .where(exceptions.c.status.in_(UNRESOLVED))
            .group_by(exceptions.c.channel, exceptions.c.severity, exceptions.c.owner_team)
        )
    ]
