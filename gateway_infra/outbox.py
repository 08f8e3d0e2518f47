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
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, Label, Row, bindparam, func, select, text, update

from contracts import EventEnvelope
from contracts.common import UtcDateTime
from gateway_infra.database import Database
from gateway_infra.tables import outbox, outbox_purges

log = logging.getLogger("gateway.outbox")

SEQUENCE_BATCH = 1000
PURGE_WATERMARK = "events"
"""Row of infra_outbox_purges: the highest position purged (gateway_infra.event_retention)."""
_SEQUENCER_LOCK = 0x5E0_0E7
"""PostgreSQL advisory lock key held by the sequencer while it numbers a batch."""


ENVELOPE_FIELDS = tuple(EventEnvelope.model_fields)
"""The envelope's fields in the contract's order: the order of its keys in JSON."""
ENVELOPE_COLUMNS: tuple[Label[Any], ...] = tuple(
    (outbox.c.event_id if name == "id" else outbox.c[name]).label(f"envelope_{name}")
    for name in ENVELOPE_FIELDS
)
"""The outbox columns an event's envelope is made of, labelled envelope_<field> (select them
with envelope_of; the labels keep them apart from other tables' columns in a join)."""
AnyRow = Row[*tuple[Any, ...]]
_KEYS = tuple((name, f"envelope_{name}") for name in ENVELOPE_FIELDS)
_INSTANT = TypeAdapter(UtcDateTime)


def envelope_of(row: AnyRow) -> dict[str, Any] | None:
    """The envelope of the event in row (selected with ENVELOPE_COLUMNS) exactly as the model's
    model_dump(mode="json") gives it, keys in the same order; None when the row has no event (an
    outer join that found none)."""
    found = row._mapping
    if found["envelope_data"] is None:
        return None
    envelope = {name: found[label] for name, label in _KEYS}
    occurred_at: datetime = envelope["occurred_at"]
    envelope["occurred_at"] = _INSTANT.dump_python(occurred_at, mode="json")
    return envelope


def event_of(row: AnyRow) -> EventEnvelope:
    """The event in row (selected with ENVELOPE_COLUMNS) as the contract's model."""
    return EventEnvelope.model_validate(envelope_of(row))


_LAST_POSITION = select(func.max(outbox.c.position)).where(outbox.c.position.is_not(None))
"""The highest position given (None before the first); the condition lets the partial index on
positions answer it."""


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
    last = last_position(conn)
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
        select(outbox.c.position, *ENVELOPE_COLUMNS)
        .where(outbox.c.position > after)
        .order_by(outbox.c.position)
        .limit(limit)
    )
    if channel is not None:
        query = query.where(outbox.c.channel == channel)
    if types is not None:
        query = query.where(outbox.c.type.in_(list(types)))
    return [SequencedEvent(row.position, event_of(row)) for row in conn.execute(query)]


def has_pending(conn: Connection) -> bool:
    """Whether a committed event waits for its position."""
    return (
        conn.execute(select(outbox.c.id).where(outbox.c.position.is_(None)).limit(1)).first()
        is not None
    )


def last_position(conn: Connection) -> int:
    """The highest position given so far (0 before the first)."""
    return int(conn.execute(_LAST_POSITION).scalar_one() or 0)


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


def watermark_name(channel: str | None) -> str:
    """Row of infra_outbox_purges for the events of one channel (or of all events)."""
    return PURGE_WATERMARK if channel is None else f"{PURGE_WATERMARK}:{channel}"


def purged_through(conn: Connection, channel: str | None = None) -> int:
    """The highest position purged among the channel's events (or all events); 0 if none."""
    value = conn.execute(
        select(outbox_purges.c.purged_through).where(
            outbox_purges.c.name == watermark_name(channel)
        )
    ).scalar_one_or_none()
    return int(value or 0)


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
        """Events after the cursor (of one channel, when given). 0 starts where the purged events
        of the channel end. A cursor below that raises CursorPurged: events after it may be gone.

        The watermark is read again after the events, in the same transaction: on PostgreSQL
        each statement sees what committed before it, and a purge commits its deletions with its
        watermark, so a purge the events query saw is always seen by the second reading."""

        def read(conn: Connection) -> tuple[int, list[SequencedEvent]]:
            start = after if after > 0 else purged_through(conn, channel)
            while True:
                found = read_after(conn, start, limit=limit, channel=channel, types=types)
                through = purged_through(conn, channel)
                if through <= start:
                    return start, found
                if after > 0:
                    raise CursorPurged(after, through)
                start = through  # a purge committed meanwhile: read from its end

        start, events = await self.database.read(read)
        return FeedPage(events, events[-1].position if events else start)
