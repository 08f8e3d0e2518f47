"""Business figures of the process layer, read from its tables when /metrics is scraped (so every
worker process answers the same, and a restart changes nothing); docs/metrics.md lists them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Connection, func, select

from contracts.order import OrderStatus
from gateway_infra.metrics import ScrapeSource
from gateway_infra.unit_of_work import Store
from process_api.monitoring.readings import (
    UNRESOLVED,
    awaiting_acknowledgement,
    inventory_sync,
    orders_by_state,
)
from process_api.monitoring.readings import open_exceptions as unresolved_exceptions
from process_api.monitoring.sla import (
    DEFAULT_ACKNOWLEDGEMENT_DEADLINE,
    SLA_CODES,
    SlaMonitors,
    SlaWorkflow,
    acknowledgement_deadlines,
)
from process_api.tables import exceptions, orders, price_publications

CLOSED_STATES = frozenset(
    {OrderStatus.SETTLED.value, OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value}
)
"""Orders in these states are counted, but their age is not a figure anyone waits on."""
QUANTILES = (("0.5", 0.5), ("0.95", 0.95), ("1", 1.0))
NO_CHANNEL = "none"


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values by the nearest-rank method (q=1: the maximum)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def read_figures(conn: Connection, now: datetime, monitors: SlaMonitors) -> list[Metric]:
    by_state = GaugeMetricFamily(
        "gateway_orders",
        "Orders by channel and status.",
        labels=("channel", "state"),
    )
    for group in orders_by_state(conn):
        by_state.add_metric((group.channel, group.status), group.count)

    # The age here is since the gateway recorded the order, as quantiles over every order in
    # the state; the console's overview shows instead how long the order longest in a state has
    # been in it (since its last change). Different questions on purpose: this one is about how
    # long orders take overall, the console's about what is stuck where.
    ages: dict[tuple[str, str], list[float]] = defaultdict(list)
    for channel, state, created_at in conn.execute(
        select(orders.c.channel, orders.c.status, orders.c.created_at).where(
            orders.c.status.not_in(list(CLOSED_STATES))
        )
    ):
        ages[(channel, state)].append(max(0.0, (now - created_at).total_seconds()))
    age = GaugeMetricFamily(
        "gateway_order_age_seconds",
        "Age (since the gateway recorded it) of the orders in each open status, by channel: "
        "quantile 0.5, 0.95 and 1 (the oldest), nearest rank.",
        labels=("channel", "state", "quantile"),
    )
    for (channel, state), values in sorted(ages.items()):
        values.sort()
        for label, q in QUANTILES:
            age.add_metric((channel, state, label), nearest_rank(values, q))

    deadlines = acknowledgement_deadlines(conn)
    pending: dict[str, int] = defaultdict(int)
    overdue: dict[str, int] = defaultdict(int)
    # The same orders as the console's "awaiting"; overdue here means past the SLA monitor
    # (configurable per channel, or off), which may differ on purpose from the channel's own
    # deadline the console counts against.
    for waiting in awaiting_acknowledgement(conn):
        channel = waiting.channel
        pending[channel] += 1
        allowed = monitors.within(
            SlaWorkflow.ORDER_ACKNOWLEDGEMENT,
            channel,
            deadlines.get(channel, DEFAULT_ACKNOWLEDGEMENT_DEADLINE),
        )
        if allowed is not None and waiting.due_since + allowed <= now:
            overdue[channel] += 1
    acks_pending = GaugeMetricFamily(
        "gateway_acknowledgements_pending",
        "Orders the channel still waits to have acknowledged (received or reserved, not held "
        "as pending), by channel.",
        labels=("channel",),
    )
    acks_overdue = GaugeMetricFamily(
        "gateway_acknowledgements_overdue",
        "Of those, the ones past the channel's acknowledgement SLA.",
        labels=("channel",),
    )
    for channel in sorted(pending):
        acks_pending.add_metric((channel,), pending[channel])
        acks_overdue.add_metric((channel,), overdue[channel])

    lag = GaugeMetricFamily(
        "gateway_inventory_sync_lag_seconds",
        "Age of the oldest availability published to the channel and not confirmed by it "
        "(0 when the channel confirmed everything), by channel.",
        labels=("channel",),
    )
    unconfirmed = GaugeMetricFamily(
        "gateway_inventory_publications_unconfirmed",
        "SKUs whose published availability the channel has not confirmed yet, by channel.",
        labels=("channel",),
    )
    for sync in inventory_sync(conn):
        oldest = sync.oldest_unconfirmed
        seconds = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        lag.add_metric((sync.channel,), seconds)
        unconfirmed.add_metric((sync.channel,), sync.unconfirmed)

    prices = GaugeMetricFamily(
        "gateway_price_publications_awaiting_confirmation",
        "Price changes sent to the channel and not confirmed by it yet, by channel.",
        labels=("channel",),
    )
    for channel, count in conn.execute(
        select(price_publications.c.channel, func.count())
        .where(price_publications.c.state == "sent")
        .group_by(price_publications.c.channel)
    ):
        prices.add_metric((channel,), count)

    open_exceptions = GaugeMetricFamily(
        "gateway_exceptions_open",
        "Unresolved (open or acknowledged) exceptions by channel, severity and owner team.",
        labels=("channel", "severity", "team"),
    )
    for unresolved in unresolved_exceptions(conn):
        open_exceptions.add_metric(
            (unresolved.channel or NO_CHANNEL, unresolved.severity, unresolved.team or NO_CHANNEL),
            unresolved.count,
        )

    breaches_open = GaugeMetricFamily(
        "gateway_sla_breaches_open",
        "SLA breaches whose exception is unresolved, by monitor and channel.",
        labels=("monitor", "channel"),
    )
    breaches_total = CounterMetricFamily(
        "gateway_sla_breaches",
        "SLA breaches raised since the gateway's store began, by monitor and channel.",
        labels=("monitor", "channel"),
    )
    totals: dict[tuple[str, str], int] = defaultdict(int)
    still_open: dict[tuple[str, str], int] = defaultdict(int)
    for code, channel, status, count in conn.execute(
        select(exceptions.c.code, exceptions.c.channel, exceptions.c.status, func.count())
        .where(exceptions.c.code.in_(list(SLA_CODES)))
        .group_by(exceptions.c.code, exceptions.c.channel, exceptions.c.status)
    ):
        labels = (SLA_CODES[code].value, channel or NO_CHANNEL)
        totals[labels] += count
        if status in UNRESOLVED:
            still_open[labels] += count
    for labels in sorted(totals):
        breaches_total.add_metric(labels, totals[labels])
        if still_open[labels]:
            breaches_open.add_metric(labels, still_open[labels])
    return [
        by_state,
        age,
        acks_pending,
        acks_overdue,
        lag,
        unconfirmed,
        prices,
        open_exceptions,
        breaches_open,
        breaches_total,
    ]


def business_figures(store: Store, monitors: SlaMonitors) -> ScrapeSource:
    async def source(now: datetime) -> Sequence[Metric]:
        return await store.read(lambda conn: read_figures(conn, now, monitors))

    return source
