"""Events are kept for a retention period, then purged in batches.

Every event is a row of the outbox (`infra_outbox`), and without a purge the table grows by one
row per event for good (a full availability publication of 100k SKUs to 6 channels writes
600,000). An event is purged once all of these hold:

- it occurred before the retention period (`GATEWAY_EVENT_RETENTION_DAYS`);
- it has its feed position and the webhook relay has passed it (its deliveries exist);
- no delivery of it is pending or dead: those are sent, or replayed, from the event;
- it is not the newest event: positions continue from the highest one kept.

The highest position purged is recorded (`infra_outbox_purges`), so a feed reader asking after an
older cursor learns that it may have missed events (`CursorPurged`) instead of skipping them
silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select

from gateway_infra.database import dialect_insert
from gateway_infra.delivery.models import DeliveryState
from gateway_infra.delivery.relay import CURSOR_NAME
from gateway_infra.delivery.tables import deliveries, relay_cursors
from gateway_infra.outbox import last_position, watermark_name
from gateway_infra.scheduler import Recurring
from gateway_infra.tables import outbox, outbox_purges
from gateway_infra.unit_of_work import Store, UnitOfWork

PURGE_TIMER = "infra.events.purge"
PURGE_EVERY = timedelta(hours=1)
PURGE_BATCH = 10_000
DELETE_CHUNK = 1_000
_KEPT_FOR_DELIVERIES = (DeliveryState.PENDING.value, DeliveryState.DEAD.value)


def purge_batch(uow: UnitOfWork, *, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` purgeable events (oldest positions first) in the caller's unit of work
    and move the watermarks up to the highest positions deleted; how many were deleted."""
    conn = uow.conn
    newest = last_position(conn)
    if not newest:
        return 0
    relayed = conn.execute(
        select(relay_cursors.c.position).where(relay_cursors.c.name == CURSOR_NAME)
    ).scalar_one_or_none()
    conditions = [
        outbox.c.position.is_not(None),
        outbox.c.position < newest,
        outbox.c.occurred_at < cutoff,
        ~exists().where(
            deliveries.c.event_id == outbox.c.event_id,
            deliveries.c.state.in_(_KEPT_FOR_DELIVERIES),
        ),
    ]
    if relayed is not None:
        # Without a cursor no delivery was ever made (webhooks off): nothing to wait for.
        conditions.append(outbox.c.position <= relayed)
    query = (
        select(outbox.c.id, outbox.c.position, outbox.c.channel)
        .where(*conditions)
        .order_by(outbox.c.position)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # An event a re-send is turning into deliveries right now is share-locked by it
        # (DeliveryAdmin.resend): skipped here, and kept next time for its pending deliveries.
        query = query.with_for_update(skip_locked=True)
    chosen = conn.execute(query).all()
    if not chosen:
        return 0
    ids = [row.id for row in chosen]
    for start in range(0, len(ids), DELETE_CHUNK):
        conn.execute(delete(outbox).where(outbox.c.id.in_(ids[start : start + DELETE_CHUNK])))
    # One watermark for all events and one per channel: a channel's feed is told it missed
    # events only when events of that channel were purged past its cursor.
    marks: dict[str | None, int] = {None: max(int(row.position) for row in chosen)}
    for row in chosen:
        if row.channel is not None:
            marks[row.channel] = max(marks.get(row.channel, 0), int(row.position))
    greatest = func.max if conn.dialect.name == "sqlite" else func.greatest
    for channel, position in marks.items():
        insert = dialect_insert(conn, outbox_purges).values(
            name=watermark_name(channel), purged_through=position, updated_at=uow.now
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[outbox_purges.c.name],
                set_={
                    "purged_through": greatest(outbox_purges.c.purged_through, position),
                    "updated_at": uow.now,
                },
            )
        )
    return len(ids)


class EventPurge(Recurring):
    """Purges events past their retention every hour, in batches of PURGE_BATCH transactions."""

    def __init__(self, store: Store, *, retention: timedelta, batch: int = PURGE_BATCH) -> None:
        super().__init__(store, PURGE_TIMER, PURGE_EVERY, self._round)
        self.retention = retention
        self.batch = batch

    async def purge(self) -> int:
        """Purge every event past retention now; how many were deleted."""
        total = 0
        while True:
            deleted = await self.store.write(
                lambda uow: purge_batch(uow, cutoff=uow.now - self.retention, limit=self.batch)
            )
            total += deleted
            if deleted < self.batch:
                return total

    async def _round(self) -> None:
        await self.purge()
