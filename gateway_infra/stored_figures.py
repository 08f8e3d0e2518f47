"""Figures of the infrastructure's stored state, read from the database at scrape time (the
outbox backlog, webhook deliveries by state, due scheduler timers); docs/metrics.md."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, func, select

from gateway_infra.database import Database
from gateway_infra.delivery.relay import CURSOR_NAME
from gateway_infra.delivery.tables import deliveries, relay_cursors
from gateway_infra.metrics import ScrapeSource
from gateway_infra.outbox import last_position
from gateway_infra.tables import outbox, timers


def infra_figures(database: Database) -> ScrapeSource:
    """Outbox backlog, webhook deliveries by state and due timers, from the database."""

    def read(conn: Connection, now: datetime) -> list[Metric]:
        unsequenced = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.position.is_(None))
        ).scalar_one()
        backlog = GaugeMetricFamily(
            "gateway_outbox_unsequenced_events",
            "Events written to the outbox and not yet given their feed position.",
            value=unsequenced,
        )
        last = last_position(conn)
        relayed = conn.execute(
            select(relay_cursors.c.position).where(relay_cursors.c.name == CURSOR_NAME)
        ).scalar_one_or_none()
        relay_lag = GaugeMetricFamily(
            "gateway_webhook_relay_backlog_events",
            "Sequenced outbox events the webhook relay has not yet turned into deliveries.",
            value=max(0, last - (relayed or 0)),
        )
        by_state = GaugeMetricFamily(
            "gateway_webhook_deliveries",
            "Webhook deliveries by state (pending, delivered, dead, cancelled).",
            labels=("state",),
        )
        for state, count in conn.execute(
            select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
        ):
            by_state.add_metric((state,), count)
        oldest = conn.execute(
            select(func.min(deliveries.c.series_started_at)).where(deliveries.c.state == "pending")
        ).scalar_one()
        age = GaugeMetricFamily(
            "gateway_webhook_oldest_pending_delivery_age_seconds",
            "Age of the oldest webhook delivery still pending (0 when none is).",
            value=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
        )
        due = GaugeMetricFamily(
            "gateway_timers_due",
            "Scheduler timers pending and due now, by kind (a backlog of work to run).",
            labels=("kind",),
        )
        for kind, count in conn.execute(
            select(timers.c.kind, func.count())
            .where(timers.c.state == "pending", timers.c.due_at <= now)
            .group_by(timers.c.kind)
        ):
            due.add_metric((kind,), count)
        return [backlog, relay_lag, by_state, age, due]

    async def source(now: datetime) -> Sequence[Metric]:
        return await database.read(lambda conn: read(conn, now))

    return source
