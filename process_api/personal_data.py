"""Removal of buyers' personal data from closed orders once the retention period has passed.

An order is closed when no step of its lifecycle can follow: settled, cancelled or rejected (an
invoiced order may still be settled or returned, so it is not closed yet). Its personal data, the
buyer (name, e-mail, phone, addresses) and the shipping address, is kept for the retention period
after the order's last change and after the last change of any of its returns, then removed: from
the order, and from the payloads of the events about it (webhook deliveries read those, so a
delivery still to be sent carries the purged payload). Returns hold no buyer data of their own.
The order keeps everything else (lines, amounts, history, correlation) and records when its
personal data was purged; purging again finds nothing more to do.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, select, update

from contracts import OrderStatus
from gateway_infra.logging import PERSONAL_DATA_KEYS
from gateway_infra.scheduler import Recurring
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.tables import orders, returns

log = logging.getLogger("gateway.personal_data")

CLOSED_STATUSES = (OrderStatus.SETTLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)
PURGE_KIND = "personal_data_purge"
BATCH = 200


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or, on a dry run, would remove)."""

    dry_run: bool
    cutoff: datetime
    orders: int
    events: int

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


def strip_personal_data(value: Any) -> tuple[Any, bool]:
    """A copy of a JSON value with every personal-data key's value set to null; whether any was."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in PERSONAL_DATA_KEYS and item is not None:
                out[key] = None
                changed = True
            else:
                out[key], inner = strip_personal_data(item)
                changed = changed or inner
        return out, changed
    if isinstance(value, list):
        items = [strip_personal_data(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def _due_orders(conn: Connection, cutoff: datetime, *, limit: int | None) -> list[str]:
    recent_return = (
        exists()
        .where(returns.c.order_id == orders.c.order_id)
        .where(returns.c.updated_at >= cutoff)
    )
    query = (
        select(orders.c.order_id)
        .where(
            orders.c.status.in_([s.value for s in CLOSED_STATUSES]),
            orders.c.updated_at < cutoff,
            orders.c.personal_data_purged_at.is_(None),
            ~recent_return,
        )
        .order_by(orders.c.updated_at, orders.c.order_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def _events_to_strip(conn: Connection, order_ids: list[str]) -> list[tuple[int, dict[str, Any]]]:
    changed: list[tuple[int, dict[str, Any]]] = []
    for row in conn.execute(
        select(outbox.c.id, outbox.c.envelope).where(outbox.c.order_id.in_(order_ids))
    ):
        envelope = dict(row.envelope)
        data, did = strip_personal_data(envelope.get("data") or {})
        if did:
            envelope["data"] = data
            changed.append((row.id, envelope))
    return changed


def purge_batch(uow: UnitOfWork, cutoff: datetime) -> tuple[int, int]:
    """Purge up to BATCH due orders in this transaction: (orders, events) changed."""
    order_ids = _due_orders(uow.conn, cutoff, limit=BATCH)
    if not order_ids:
        return 0, 0
    events = _events_to_strip(uow.conn, order_ids)
    for event_row_id, envelope in events:
        uow.conn.execute(
            update(outbox).where(outbox.c.id == event_row_id).values(envelope=envelope)
        )
    # The conditions again: an order that changed meanwhile is left for the next round.
    purged = uow.conn.execute(
        update(orders)
        .where(
            orders.c.order_id.in_(order_ids),
            orders.c.personal_data_purged_at.is_(None),
            orders.c.updated_at < cutoff,
        )
        .values(customer=None, shipping_address=None, personal_data_purged_at=uow.now)
    ).rowcount
    return int(purged), len(events)


def count_due(conn: Connection, cutoff: datetime) -> tuple[int, int]:
    """What a purge at this cutoff would change: (orders, events)."""
    order_ids = _due_orders(conn, cutoff, limit=None)
    events = 0
    for start in range(0, len(order_ids), BATCH):
        events += len(_events_to_strip(conn, order_ids[start : start + BATCH]))
    return len(order_ids), events


class PersonalDataPurge:
    """Removes buyers' personal data from orders closed longer than the retention period."""

    def __init__(self, store: Store, retention: timedelta) -> None:
        self.store = store
        self.retention = retention

    def cutoff(self) -> datetime:
        return self.store.clock.now() - self.retention

    async def run(self, *, dry_run: bool = False) -> PurgeReport:
        cutoff = self.cutoff()
        if dry_run:
            found = await self.store.read(lambda conn: count_due(conn, cutoff))
            return PurgeReport(dry_run=True, cutoff=cutoff, orders=found[0], events=found[1])
        total_orders = total_events = 0
        while True:
            done_orders, done_events = await self.store.write(lambda uow: purge_batch(uow, cutoff))
            total_orders += done_orders
            total_events += done_events
            if done_orders < BATCH:
                break
        report = PurgeReport(dry_run=False, cutoff=cutoff, orders=total_orders, events=total_events)
        log.info("personal data purged", extra=report.as_json())
        return report

    def run_sync(self, *, dry_run: bool = False) -> PurgeReport:
        """The same on the calling thread (the CLI command)."""
        cutoff = self.cutoff()
        if dry_run:
            found = self.store.database.run_read(lambda conn: count_due(conn, cutoff))
            return PurgeReport(dry_run=True, cutoff=cutoff, orders=found[0], events=found[1])
        total_orders = total_events = 0
        while True:
            done_orders, done_events = self.store.write_sync(lambda uow: purge_batch(uow, cutoff))
            total_orders += done_orders
            total_events += done_events
            if done_orders < BATCH:
                break
        report = PurgeReport(dry_run=False, cutoff=cutoff, orders=total_orders, events=total_events)
        log.info("personal data purged", extra=report.as_json())
        return report

    def job(self, every: timedelta) -> Recurring:
        """The scheduler's recurring purge."""

        async def purge() -> None:
            await self.run()

        return Recurring(self.store, PURGE_KIND, every, purge)
