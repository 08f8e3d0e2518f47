"""Units of work: a business change and its outbox events committed in one transaction.

A unit of work is a synchronous function of a UnitOfWork; Store.write runs it whole in a worker
thread, writes the events it emitted to the outbox and commits, or rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import anyio.to_thread
from pydantic import JsonValue
from sqlalchemy import Connection, insert

from contracts import EventEnvelope
from gateway_infra.bulk import driver_value, insert_rows
from gateway_infra.clock import Clock
from gateway_infra.correlation import current_correlation_id
from gateway_infra.database import Database
from gateway_infra.envelopes import SharedFields, new_event_ids
from gateway_infra.tables import outbox

T = TypeVar("T")

OrderOfEvent = Callable[[Connection, str, Mapping[str, JsonValue]], tuple[str, str | None] | None]
"""Finds the order an event (subject, data) concerns: (order id, the order's origin correlation
id), or None. The process layer knows orders; the composition root installs its finder."""


@dataclass
class UnitOfWork:
    """The connection of one transaction, its instant, and the events it will publish."""

    conn: Connection
    now: datetime
    correlation_id: str | None
    events: list[EventEnvelope] = field(default_factory=list)
    order_of: OrderOfEvent | None = None
    event_orders: dict[str, str] = field(default_factory=dict)
    """The order each emitted event concerns, by event id (for the outbox's order_id)."""
    known_orders: dict[str, str | None] = field(default_factory=dict)
    """Orders this transaction recorded, with their origin correlation id: an event whose subject
    is `order/<id>` of one of them concerns it, without asking the order finder."""
    _shared: dict[tuple[str, int, str], SharedFields] = field(default_factory=dict, repr=False)
    committed: list[Callable[[], None]] = field(default_factory=list)
    """Called, in order, once this transaction has committed (never when it rolls back)."""

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Call fn once this transaction has committed; not at all if it rolls back."""
        self.committed.append(fn)

    def emit(
        self,
        type: str,
        *,
        source: str,
        subject: str,
        data: Mapping[str, JsonValue],
        channel: str | None = None,
        causation_id: str | None = None,
        version: int = 1,
    ) -> EventEnvelope:
        """Record an event to be written to the outbox with this transaction.

        Its correlation id is the request's (or the continued work's); when it concerns an order,
        it also records the correlation id of the request that created that order."""
        found = self._order_concerned(subject, data)
        event = EventEnvelope(
            type=type,
            version=version,
            occurred_at=self.now,
            correlation_id=self.correlation_id,
            causation_id=causation_id or self.correlation_id,
            origin_correlation_id=found[1] if found else None,
            source=source,
            subject=subject,
            channel=channel,
            data=dict(data),
        )
        self.events.append(event)
        if found is not None:
            self.event_orders[str(event.id)] = found[0]
        return event

    def _order_concerned(
        self, subject: str, data: Mapping[str, JsonValue]
    ) -> tuple[str, str | None] | None:
        kind, _, key = subject.partition("/")
        if kind == "order" and key in self.known_orders:
            return key, self.known_orders[key]
        return self.order_of(self.conn, subject, data) if self.order_of is not None else None

    def emit_many(
        self,
        type: str,
        *,
        source: str,
        subjects: Sequence[str],
        channels: Sequence[str | None],
        data: Sequence[str],
        version: int = 1,
    ) -> list[str]:
        """Write many events of one type to the outbox now, after those emitted before; their
        ids, in order. Event n has subjects[n], channels[n] and data[n] (already serialised as a
        JSON object); they share this transaction's instant and correlation id, like emit()'s.

        For units of work that emit events by the hundred thousand (a full availability
        publication): the fields they share are validated once, and the rows go to the driver in
        one call, column by column (no object per event). The events concern no order: the
        order finder is not asked."""
        if not len(subjects) == len(channels) == len(data):
            raise ValueError("subjects, channels and data differ in length")
        self.flush_events()
        shared = self._shared.get((type, version, source))
        if shared is None:
            shared = self._shared[(type, version, source)] = SharedFields(
                type=type,
                version=version,
                occurred_at=self.now,
                source=source,
                correlation_id=self.correlation_id,
                causation_id=self.correlation_id,
            )
        ids = new_event_ids(len(subjects))
        insert_rows(
            self.conn,
            outbox,
            ("event_id", "subject", "channel", "data"),
            zip(
                ids,
                map(shared.subject, subjects),
                map(shared.channel, channels),
                data,
                strict=True,
            ),
            shared={
                "type": type,
                "version": version,
                "source": source,
                "correlation_id": self.correlation_id,
                "causation_id": self.correlation_id,
                "occurred_at": driver_value(self.conn, outbox.c.occurred_at, self.now),
            },
        )
        return ids

    def flush_events(self) -> None:
        """Write the events emitted so far to the outbox now, inside this transaction: they still
        commit or roll back with it. Keeps the memory of a unit of work that emits many events
        (a full availability publication) bounded by one batch instead of all of them."""
        write_outbox(self.conn, self.events, self.event_orders)
        self.events.clear()


def write_outbox(
    conn: Connection, events: list[EventEnvelope], orders: Mapping[str, str] | None = None
) -> None:
    """Insert the events; orders names the order of those that concern one, by event id."""
    orders = orders or {}
    if not events:
        return
    conn.execute(
        insert(outbox),
        [
            {
                "event_id": str(event.id),
                "type": event.type,
                "version": event.version,
                "source": event.source,
                "subject": event.subject,
                "channel": event.channel,
                "correlation_id": event.correlation_id,
                "causation_id": event.causation_id,
                "order_id": orders.get(str(event.id)),
                "origin_correlation_id": event.origin_correlation_id,
                "occurred_at": event.occurred_at,
                "data": event.model_dump(mode="json", include={"data"})["data"],
            }
            for event in events
        ],
    )


class Store:
    """The gateway's database and clock, handing out units of work and read transactions."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock
        self.order_of: OrderOfEvent | None = None

    def _run_unit(self, fn: Callable[[UnitOfWork], T], correlation_id: str | None) -> T:
        committed: list[Callable[[], None]] = []

        def in_transaction(conn: Connection) -> T:
            uow = UnitOfWork(
                conn=conn,
                now=self.clock.now(),
                correlation_id=correlation_id,
                order_of=self.order_of,
                committed=committed,
            )
            result = fn(uow)
            write_outbox(conn, uow.events, uow.event_orders)
            return result

        result = self.database.run_write(in_transaction)
        for callback in committed:
            callback()
        return result

    async def write(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run fn as one unit of work off the event loop; its events commit with it."""
        return await anyio.to_thread.run_sync(
            self._run_unit, fn, current_correlation_id(), limiter=self.database.write_limiter
        )

    def write_sync(self, fn: Callable[[UnitOfWork], T]) -> T:
        """The same as write, on the calling thread (CLI commands and set-up)."""
        return self._run_unit(fn, current_correlation_id())

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await self.database.read(fn)
