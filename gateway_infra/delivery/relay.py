"""The relay: turns sequenced outbox events into deliveries, one per matching subscription.

It reads events after its durable cursor, in commit order (positions from the outbox
sequencer), and in the same transaction creates the deliveries and moves the cursor: after a
crash it continues exactly where the last committed batch ended, and a batch is never half
done. A subscription receives the events of its channel, of the types it chose (and that
partners may receive at all), that occurred from its creation on. Several processes may run the
relay: the cursor row is locked, so one of them moves it at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from gateway_infra.database import dialect_insert
from gateway_infra.delivery.models import DeliveryState, SubscriptionState
from gateway_infra.delivery.tables import deliveries, relay_cursors, subscriptions
from gateway_infra.outbox import SequencedEvent, read_after
from gateway_infra.unit_of_work import Store, UnitOfWork

log = logging.getLogger("gateway.delivery.relay")

CURSOR_NAME = "webhooks"
RELAY_BATCH = 500


def _lock_cursor(uow: UnitOfWork) -> int | None:
    """The cursor's position, locked for this transaction; None when another relay holds it."""
    conn = uow.conn
    conn.execute(
        dialect_insert(conn, relay_cursors)
        .values(name=CURSOR_NAME, position=0, updated_at=uow.now)
        .on_conflict_do_nothing(index_elements=[relay_cursors.c.name])
    )
    query = select(relay_cursors.c.position).where(relay_cursors.c.name == CURSOR_NAME)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    position = conn.execute(query).scalar_one_or_none()
    return None if position is None else int(position)


def delivery_rows(
    events: Sequence[SequencedEvent], subscription_rows: Sequence[Any], now: Any
) -> list[dict[str, Any]]:
    """One pending delivery per (event, subscription) whose channel and types match."""
    rows: list[dict[str, Any]] = []
    for sequenced in events:
        event = sequenced.event
        for sub in subscription_rows:
            if (
                sub.channel == event.channel
                and event.type in sub.event_types
                and event.occurred_at >= sub.created_at
            ):
                rows.append(
                    {
                        "subscription_id": sub.subscription_id,
                        "event_id": str(event.id),
                        "event_type": event.type,
                        "channel": event.channel,
                        "subject": event.subject,
                        "position": sequenced.position,
                        "occurred_at": event.occurred_at,
                        "state": DeliveryState.PENDING.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "series_started_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    return rows


def _log_created(events: Sequence[SequencedEvent], rows: Sequence[dict[str, Any]]) -> None:
    """One line per event that got deliveries, under the correlation of the request that caused
    the event: a batch mixes the work of many requests."""
    made: dict[str, int] = {}
    for row in rows:
        made[row["event_id"]] = made.get(row["event_id"], 0) + 1
    for sequenced in events:
        event = sequenced.event
        count = made.get(str(event.id))
        if count:
            log.info(
                "webhook deliveries created",
                extra={
                    "correlation_id": event.correlation_id,
                    "origin_correlation_id": event.origin_correlation_id,
                    "event_id": str(event.id),
                    "event_type": event.type,
                    "deliveries": count,
                },
            )


class Relay:
    """Moves the webhook cursor over sequenced events, creating their deliveries."""

    def __init__(
        self, store: Store, *, allowed_types: Sequence[str], batch: int = RELAY_BATCH
    ) -> None:
        self.store = store
        self.allowed_types = tuple(allowed_types)
        self.batch = batch
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        self._wake.set()

    def relay_batch(self, uow: UnitOfWork) -> tuple[int, int]:
        """One batch in the caller's transaction: (events passed, deliveries created)."""
        after = _lock_cursor(uow)
        if after is None:
            return 0, 0
        # Every event moves the cursor, deliverable or not, so an idle check stays one lookup.
        passed = read_after(uow.conn, after, limit=self.batch)
        if not passed:
            return 0, 0
        events = [e for e in passed if e.event.type in self.allowed_types]
        channels = {e.event.channel for e in events if e.event.channel is not None}
        subscription_rows = (
            list(
                uow.conn.execute(
                    select(
                        subscriptions.c.subscription_id,
                        subscriptions.c.channel,
                        subscriptions.c.event_types,
                        subscriptions.c.created_at,
                    ).where(
                        subscriptions.c.channel.in_(sorted(channels)),
                        subscriptions.c.state == SubscriptionState.ACTIVE.value,
                    )
                )
            )
            if channels
            else []
        )
        rows = delivery_rows(events, subscription_rows, uow.now)
        if rows:
            uow.conn.execute(
                dialect_insert(uow.conn, deliveries).on_conflict_do_nothing(
                    index_elements=[deliveries.c.subscription_id, deliveries.c.event_id]
                ),
                rows,
            )
            _log_created(events, rows)
        uow.conn.execute(
            update(relay_cursors)
            .where(relay_cursors.c.name == CURSOR_NAME)
            .values(position=passed[-1].position, updated_at=uow.now)
        )
        return len(passed), len(rows)

    def has_work(self, conn: Connection) -> bool:
        """Whether a sequenced event lies past the cursor."""
        after = conn.execute(
            select(relay_cursors.c.position).where(relay_cursors.c.name == CURSOR_NAME)
        ).scalar_one_or_none()
        return bool(read_after(conn, int(after or 0), limit=1))

    async def run_once(self) -> int:
        """Relay every sequenced event past the cursor now; how many deliveries were created.

        Reads first: an idle relay does not take the write lock."""
        created = 0
        if not await self.store.read(self.has_work):
            return 0
        while True:
            passed, made = await self.store.write(self.relay_batch)
            created += made
            if passed < self.batch:
                return created

    async def run_forever(self, poll_seconds: float, *, on_created: Any = None) -> None:
        while True:
            try:
                made = await self.run_once()
                if made and on_created is not None:
                    on_created()
            except Exception:  # the next round tries again
                log.exception("webhook relay round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            self._wake.clear()


__all__ = ["CURSOR_NAME", "Relay", "delivery_rows"]
