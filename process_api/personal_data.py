"""Removal of buyers' personal data from closed orders once the retention period has passed.

An order is closed when no step of its lifecycle can follow: settled, cancelled or rejected (an
invoiced order may still be settled or returned, so it is not closed yet). Its personal data, the
buyer (name, e-mail, phone, addresses) and the shipping address, is kept for the retention period
after the order's last change and after the last change of any of its returns, then removed: from
the order, and from the payloads of the events about it (webhook deliveries read those, so a
delivery still to be sent carries the purged payload); e-mail addresses and phone numbers that
people copied into free texts (reasons of status changes, return lines' reasons) are masked.
Returns hold no buyer fields of their own.
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
from gateway_infra.database import for_update
from gateway_infra.logging import PERSONAL_DATA_KEYS, redact_text
from gateway_infra.scheduler import Recurring
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.tables import order_history, orders, return_history, return_lines, returns

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
    texts: int
    """Free texts (return reasons, status-change reasons) with e-mails or phones masked."""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


def strip_personal_data(value: Any) -> tuple[Any, bool]:
    """A copy of a JSON value with every personal-data key's value set to null and e-mail
    addresses and phone numbers masked in its texts; whether anything changed."""
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
    if isinstance(value, str):
        masked = redact_text(value)
        return masked, masked != value
    return value, False


def _due_orders(
    conn: Connection,
    cutoff: datetime,
    *,
    limit: int | None,
    among: list[str] | None = None,
) -> list[str]:
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
    if among is not None:
        query = query.where(orders.c.order_id.in_(among))
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def _lock_still_due(conn: Connection, cutoff: datetime, order_ids: list[str]) -> list[str]:
    """Those of the selected orders that are still due once nothing can change them any more.

    On PostgreSQL the rows of the orders and of their returns are locked first (returns are
    opened under their order's lock), then the conditions are checked again in a new statement,
    which sees every change committed before the locks were granted: an order that changed, or
    got a return or a change to one, since it was selected is left whole for a later round.
    SQLite's write transactions are exclusive, so nothing changes there in between.
    """
    conn.execute(
        for_update(
            conn,
            select(orders.c.order_id)
            .where(orders.c.order_id.in_(order_ids))
            .order_by(orders.c.order_id),
        )
    )
    conn.execute(
        for_update(
            conn,
            select(returns.c.return_id)
            .where(returns.c.order_id.in_(order_ids))
            .order_by(returns.c.return_id),
        )
    )
    return _due_orders(conn, cutoff, limit=None, among=order_ids)


def _events_to_strip(conn: Connection, order_ids: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The events of the orders whose data carries personal data: (row id, data stripped)."""
    changed: list[tuple[int, dict[str, Any]]] = []
    for row in conn.execute(
        select(outbox.c.id, outbox.c.data).where(outbox.c.order_id.in_(order_ids))
    ):
        data, did = strip_personal_data(row.data or {})
        if did:
            changed.append((row.id, data))
    return changed


def _texts_to_mask(conn: Connection, order_ids: list[str]) -> list[tuple[Any, Any, str]]:
    """Free texts of the orders and their returns (reasons, status-change reasons) in which an
    e-mail address or a phone number is to be masked: (table, row key condition, masked text)."""
    changed: list[tuple[Any, Any, str]] = []
    return_ids = select(returns.c.return_id).where(returns.c.order_id.in_(order_ids))
    for line in conn.execute(
        select(return_lines.c.return_id, return_lines.c.line_id, return_lines.c.reason).where(
            return_lines.c.return_id.in_(return_ids)
        )
    ):
        masked = redact_text(line.reason)
        if masked != line.reason:
            key = (return_lines.c.return_id == line.return_id) & (
                return_lines.c.line_id == line.line_id
            )
            changed.append((return_lines, key, masked))
    for table, owner in (
        (order_history, order_history.c.order_id.in_(order_ids)),
        (return_history, return_history.c.return_id.in_(return_ids)),
    ):
        for row in conn.execute(
            select(table.c.id, table.c.reason).where(owner, table.c.reason.is_not(None))
        ):
            masked = redact_text(row.reason)
            if masked != row.reason:
                changed.append((table, table.c.id == row.id, masked))
    return changed


def purge_batch(uow: UnitOfWork, cutoff: datetime) -> tuple[int, int, int]:
    """Purge up to BATCH due orders in this transaction: (orders, events, texts) changed.

    Each order is purged whole or not at all: its row, its events and its texts change together,
    and only once the order is known to be still due under lock.
    """
    selected = _due_orders(uow.conn, cutoff, limit=BATCH)
    if not selected:
        return 0, 0, 0
    order_ids = _lock_still_due(uow.conn, cutoff, selected)
    if order_ids:
        uow.conn.execute(
            update(orders)
            .where(orders.c.order_id.in_(order_ids))
            .values(customer=None, shipping_address=None, personal_data_purged_at=uow.now)
        )
    events = _events_to_strip(uow.conn, order_ids) if order_ids else []
    for event_row_id, data in events:
        uow.conn.execute(update(outbox).where(outbox.c.id == event_row_id).values(data=data))
    texts = _texts_to_mask(uow.conn, order_ids) if order_ids else []
    for table, key, masked in texts:
        uow.conn.execute(update(table).where(key).values(reason=masked))
    return len(order_ids), len(events), len(texts)


def count_due(conn: Connection, cutoff: datetime) -> tuple[int, int, int]:
    """What a purge at this cutoff would change: (orders, events, texts)."""
    order_ids = _due_orders(conn, cutoff, limit=None)
    events = texts = 0
    for start in range(0, len(order_ids), BATCH):
        batch = order_ids[start : start + BATCH]
        events += len(_events_to_strip(conn, batch))
        texts += len(_texts_to_mask(conn, batch))
    return len(order_ids), events, texts


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
            return _counted(cutoff, await self.store.read(lambda conn: count_due(conn, cutoff)))
        total = (0, 0, 0)
        while True:
            done = await self.store.write(lambda uow: purge_batch(uow, cutoff))
            total = _add(total, done)
            if done[0] < BATCH:
                return _purged(cutoff, total)

    def run_sync(self, *, dry_run: bool = False) -> PurgeReport:
        """The same on the calling thread (the command line)."""
        cutoff = self.cutoff()
        if dry_run:
            return _counted(cutoff, self.store.database.run_read(lambda c: count_due(c, cutoff)))
        total = (0, 0, 0)
        while True:
            done = self.store.write_sync(lambda uow: purge_batch(uow, cutoff))
            total = _add(total, done)
            if done[0] < BATCH:
                return _purged(cutoff, total)

    def job(self, every: timedelta) -> Recurring:
        """The scheduler's recurring purge."""

        async def purge() -> None:
            await self.run()

        return Recurring(self.store, PURGE_KIND, every, purge)


def _add(total: tuple[int, int, int], done: tuple[int, int, int]) -> tuple[int, int, int]:
    return total[0] + done[0], total[1] + done[1], total[2] + done[2]


def _counted(cutoff: datetime, found: tuple[int, int, int]) -> PurgeReport:
    return PurgeReport(
        dry_run=True, cutoff=cutoff, orders=found[0], events=found[1], texts=found[2]
    )


def _purged(cutoff: datetime, total: tuple[int, int, int]) -> PurgeReport:
    report = PurgeReport(
        dry_run=False, cutoff=cutoff, orders=total[0], events=total[1], texts=total[2]
    )
    log.info("personal data purged", extra=report.as_json())
    return report
