"""Commit order of the outbox: one sequencer gives committed events their positions.

Ids are taken when a row is inserted, so on PostgreSQL a transaction that started early can commit
an event with a lower id after a reader has already passed it. Positions are assigned only to rows
that are visible, that is committed, by one sequencer at a time (an advisory lock on PostgreSQL;
SQLite's writers take turns anyway), each batch above every position given before. A reader that
pages by position therefore never skips an event: positions only ever appear after the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, text, update

from contracts import EventEnvelope
from gateway_infra.database import Database
from gateway_infra.tables import outbox, outbox_purges

log = logging.getLogger("gateway.outbox")

SEQUENCE_BATCH = 1000
PURGE_WATERMARK = "events"
"""Row of infra_outbox_purges: the highest position purged (gateway_infra.event_retention)."""
_SEQUENCER_LOCK = 0x5E0_0E7
"""PostgreSQL advisory lock key held by the sequencer while it numbers a batch."""


@dataclass(frozen=True)
class SequencedEvent:
    """An outbox event with its commit-order position."""

    position: int
    event: EventEnvelope


def sequence_pending(conn: Connection, *, limit: int = SEQUENCE_BATCH) -> int:
    """Number the committed events that have no position yet, in id order; how many it did.

    Run in a transaction of its own (the lock is released at its commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
    ids = list(
        conn.execute(
            select(outbox.c.id)
            .where(outbox.c.position.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return 0
    last = conn.execute(select(func.coalesce(func.max(outbox.c.position), 0))).scalar_one()
    conn.execute(
        update(outbox)
        .where(outbox.c.id == bindparam("k_id"))
        .values(position=bindparam("k_position")),
        [{"k_id": row_id, "k_position": last + n} for n, row_id in enumerate(ids, start=1)],
    )
    return len(ids)


def read_after(
    conn: Connection,
    after: int,
    *,
    limit: int,
    channel: str | None = None,
    types: Sequence[str] | None = None,
) -> list[SequencedEvent]:
    """Sequenced events after a position, in commit order; of one channel and some types."""
    query = (
        select(outbox.c.position, outbox.c.envelope)
        .where(outbox.c.position > after)
        .order_by(outbox.c.position)
        .limit(limit)
    )
    if channel is not None:
        query = query.where(outbox.c.channel == channel)
    if types is not None:
        query = query.where(outbox.c.type.in_(list(types)))
    return [
        SequencedEvent(row.position, EventEnvelope.model_validate(row.envelope))
        for row in conn.execute(query)
    ]


def has_pending(conn: Connection) -> bool:
    """Whether a committed event waits for its position."""
    return (
        conn.execute(select(outbox.c.id).where(outbox.c.position.is_(None)).limit(1)).first()
        is not None
    )


def last_position(conn: Connection) -> int:
    """The highest position given so far (0 before the first)."""
    return int(conn.execute(select(func.coalesce(func.max(outbox.c.position), 0))).scalar_one())


class Sequencer:
    """Numbers committed outbox events soon after their commit, in the background."""

    def __init__(self, database: Database, *, poll_seconds: float = 0.2) -> None:
        self.database = database
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Events were just committed: number them without waiting for the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Number every pending event now; how many. Reads first: no write while idle."""
        total = 0
        while await self.database.read(has_pending):
            done = await self.database.write(lambda conn: sequence_pending(conn))
            total += done
            if done < SEQUENCE_BATCH:
                break
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the next round tries again
                log.exception("outbox sequencing failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()


@dataclass(frozen=True)
class FeedPage:
    """Events after a cursor and the cursor to ask with next (the same one when none came)."""

    events: list[SequencedEvent]
    next_position: int


class CursorPurged(Exception):
    """A feed cursor below the purge watermark: events after it may have been purged."""

    def __init__(self, after: int, purged_through: int) -> None:
        super().__init__(f"events up to position {purged_through} were purged")
        self.after = after
        self.purged_through = purged_through


class EventFeed:
    """Sequenced events, read in commit order by position."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def page(
        self,
        *,
        after: int,
        limit: int,
        channel: str | None = None,
        types: Sequence[str] | None = None,
    ) -> FeedPage:
        """Events after the cursor; 0 starts at the oldest event kept. A cursor below the purge
        watermark raises CursorPurged (events after it may be gone)."""

        def read(conn: Connection) -> list[SequencedEvent]:
            if after > 0:
                through = conn.execute(
                    select(outbox_purges.c.purged_through).where(
                        outbox_purges.c.name == PURGE_WATERMARK
                    )
                ).scalar_one_or_none()
                if through is not None and after < through:
                    raise CursorPurged(after, int(through))
            return read_after(conn, after, limit=limit, channel=channel, types=types)

        events = await self.database.read(read)
        return FeedPage(events, events[-1].position if events else after)
