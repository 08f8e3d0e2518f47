"""What the console's pages read: the per-channel overview in one read transaction of the process
layer's tables, and one order's journey from the journey service with the order's exceptions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from contracts.exceptions import SEVERITY_ORDER, ExceptionRecord
from gateway_infra.unit_of_work import Store
from process_api.channels import repository as channels_repo
from process_api.exceptions import repository as exceptions_repo
from process_api.journey.models import OrderJourney
from process_api.journey.service import OrderJourneys
from process_api.monitoring.readings import (
    awaiting_acknowledgement,
    inventory_sync,
    open_exceptions,
    orders_by_state,
)
from process_api.order_to_cash.service import IntakeRules

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

    # One reading serves this page and /metrics (process_api/monitoring/readings.py).
    for group in orders_by_state(conn):
        of(group.channel).states.append(
            StateFigures(group.status, group.count, group.oldest_change)
        )

    # Orders the channel waits to hear about (a pending order is not asked for yet). Their
    # deadline is the one the order service set when it started validating (its warning
    # timer's payload), or, once that timer has fired, the time the acknowledgement became due
    # plus the profile's deadline. (The channel's deadline, where /metrics counts "overdue"
    # against the SLA monitor, which may be set differently per channel or off.)
    deadlines: dict[str, list[Deadline]] = defaultdict(list)
    for waiting in awaiting_acknowledgement(conn):
        profile = profiles.get(waiting.channel)
        allowed = profile.acknowledgement_deadline if profile else DEFAULT_ACKNOWLEDGEMENT
        due = waiting.workflow_deadline or waiting.due_since + allowed
        deadlines[waiting.channel].append(
            Deadline(waiting.order_id, waiting.channel_order_id, waiting.status, due)
        )
    for channel, found in deadlines.items():
        view = of(channel)
        view.awaiting_acknowledgement = len(found)
        view.overdue_acknowledgements = sum(1 for d in found if d.deadline <= now)
        view.next_deadlines = sorted(found, key=lambda d: d.deadline)[:DEADLINES_SHOWN]

    for sync in inventory_sync(conn):
        of(sync.channel).sync = SyncLag(
            sync.published, sync.unconfirmed, sync.oldest_unconfirmed, sync.last_published
        )

    # Exceptions of no channel are the queue's, not a channel's; the teams are summed here.
    for unresolved in open_exceptions(conn):
        if unresolved.channel is None:
            continue
        counts = of(unresolved.channel).exceptions_by_severity
        counts[unresolved.severity] = counts.get(unresolved.severity, 0) + unresolved.count
    order = {s.value: i for i, s in enumerate(reversed(SEVERITY_ORDER))}
    for view in channels.values():
        view.exceptions_by_severity = dict(
            sorted(view.exceptions_by_severity.items(), key=lambda kv: order.get(kv[0], 99))
        )
    return [channels[name] for name in sorted(channels)]
