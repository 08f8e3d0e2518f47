"""What the console's pages read: the per-channel overview in one read transaction of the process
layer's tables, and one order's journey from the journey service with the order's exceptions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from contracts.exceptions import SEVERITY_ORDER, ExceptionRecord, ExceptionStatus
from contracts.order import OrderStatus
from gateway_infra.tables import timers
from gateway_infra.unit_of_work import Store
from process_api.channels import repository as channels_repo
from process_api.exceptions import repository as exceptions_repo
from process_api.journey.models import OrderJourney
from process_api.journey.service import OrderJourneys
from process_api.order_to_cash.service import ACK_DEADLINE_TIMER, IntakeRules
from process_api.tables import exceptions, orders, published_availability

AWAITING_ACKNOWLEDGEMENT = (OrderStatus.RECEIVED.value, OrderStatus.RESERVED.value)
UNRESOLVED = (ExceptionStatus.OPEN.value, ExceptionStatus.ACKNOWLEDGED.value)
DEADLINES_SHOWN = 10
DEFAULT_ACKNOWLEDGEMENT = IntakeRules().acknowledgement_deadline


@dataclass(frozen=True)
class StateFigures:
    status: str
    count: int
    oldest_change: datetime
    """When the order longest in this state got there."""


@dataclass(frozen=True)
class Deadline:
    order_id: str
    channel_order_id: str
    status: str
    deadline: datetime


@dataclass(frozen=True)
class SyncLag:
    published: int
    unconfirmed: int
    oldest_unconfirmed: datetime | None
    last_published: datetime | None


@dataclass
class ChannelOverview:
    channel: str
    has_profile: bool
    states: list[StateFigures] = field(default_factory=list)
    awaiting_acknowledgement: int = 0
    overdue_acknowledgements: int = 0
    next_deadlines: list[Deadline] = field(default_factory=list)
    sync: SyncLag = field(default_factory=lambda: SyncLag(0, 0, None, None))
    exceptions_by_severity: dict[str, int] = field(default_factory=dict)

    @property
    def unresolved_exceptions(self) -> int:
        return sum(self.exceptions_by_severity.values())


@dataclass(frozen=True)
class Journey:
    """One order's journey (the journey service's, the same the process API returns) and the
    exceptions raised about the order."""

    journey: OrderJourney
    exceptions: list[ExceptionRecord]


class ConsoleReads:
    """The read side of the console."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.journeys = OrderJourneys(store)

    async def overview(self) -> list[ChannelOverview]:
        now = self.store.clock.now()
        return await self.store.read(lambda conn: _overview(conn, now))

    async def journey(self, order_id: str) -> Journey | None:
        found = await self.journeys.get(order_id)
        if found is None:
            return None
        raised = await self.store.read(
            lambda conn: exceptions_repo.list_exceptions(
                conn, subject=f"order/{order_id}", limit=100
            )
        )
        return Journey(found, raised)


def _overview(conn: Connection, now: datetime) -> list[ChannelOverview]:
    profiles = channels_repo.profiles_in(conn)
    channels: dict[str, ChannelOverview] = {
        name: ChannelOverview(name, has_profile=True) for name in profiles
    }

    def of(name: str) -> ChannelOverview:
        if name not in channels:
            channels[name] = ChannelOverview(name, has_profile=False)
        return channels[name]

    by_state = conn.execute(
        select(orders.c.channel, orders.c.status, func.count(), func.min(orders.c.updated_at))
        .group_by(orders.c.channel, orders.c.status)
        .order_by(orders.c.channel, orders.c.status)
    )
    for channel, status, count, oldest in by_state:
        of(channel).states.append(StateFigures(status, count, oldest))

    # Orders the channel waits to hear about (a pending order is not asked for yet). Their
    # deadline is the one the order service set when it started validating (its warning
    # timer's payload), or, once that timer has fired, intake time plus the profile's deadline.
    awaiting = conn.execute(
        select(
            orders.c.order_id,
            orders.c.channel,
            orders.c.channel_order_id,
            orders.c.status,
            orders.c.created_at,
            timers.c.payload,
        )
        .select_from(orders)
        .outerjoin(
            timers, (timers.c.kind == ACK_DEADLINE_TIMER) & (timers.c.key == orders.c.order_id)
        )
        .where(orders.c.status.in_(AWAITING_ACKNOWLEDGEMENT), orders.c.pending_expires_at.is_(None))
    )
    deadlines: dict[str, list[Deadline]] = defaultdict(list)
    for row in awaiting:
        profile = profiles.get(row.channel)
        allowed = profile.acknowledgement_deadline if profile else DEFAULT_ACKNOWLEDGEMENT
        due = row.created_at + allowed
        if isinstance(row.payload, dict) and isinstance(row.payload.get("deadline"), str):
            due = datetime.fromisoformat(row.payload["deadline"])
        deadlines[row.channel].append(Deadline(row.order_id, row.channel_order_id, row.status, due))
    for channel, found in deadlines.items():
        view = of(channel)
        view.awaiting_acknowledgement = len(found)
        view.overdue_acknowledgements = sum(1 for d in found if d.deadline <= now)
        view.next_deadlines = sorted(found, key=lambda d: d.deadline)[:DEADLINES_SHOWN]

    pa = published_availability
    sync = conn.execute(
        select(
            pa.c.channel,
            func.count(),
            func.count(pa.c.confirmed_at),
            func.min(pa.c.published_at).filter(pa.c.confirmed_at.is_(None)),
            func.max(pa.c.published_at),
        ).group_by(pa.c.channel)
    )
    for channel, published, confirmed, oldest_unconfirmed, last in sync:
        of(channel).sync = SyncLag(published, published - confirmed, oldest_unconfirmed, last)

    open_exceptions = conn.execute(
        select(exceptions.c.channel, exceptions.c.severity, func.count())
        .where(exceptions.c.status.in_(UNRESOLVED), exceptions.c.channel.is_not(None))
        .group_by(exceptions.c.channel, exceptions.c.severity)
    )
    for channel, severity, count in open_exceptions:
        of(channel).exceptions_by_severity[severity] = count
    order = {s.value: i for i, s in enumerate(reversed(SEVERITY_ORDER))}
    for view in channels.values():
        view.exceptions_by_severity = dict(
            sorted(view.exceptions_by_severity.items(), key=lambda kv: order.get(kv[0], 99))
        )
    return [channels[name] for name in sorted(channels)]
