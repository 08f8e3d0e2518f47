"""Outbox positions follow commit order: a reader paging by position never skips an event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts import EventEnvelope
from gateway_infra.database import Database
from gateway_infra.outbox import EventFeed, Sequencer, read_after, sequence_pending
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store, UnitOfWork
from tests.conftest import provisioned_database


def emit(store: Store, type: str = "order.accepted", channel: str | None = "webshop") -> None:
    def unit(uow: UnitOfWork) -> None:
        uow.emit(type, source="test", subject="order/1", channel=channel, data={})

    store.write_sync(unit)


def positions(database: Database) -> list[tuple[int, int | None]]:
    return [
        (row.id, row.position)
        for row in database.run_read(
            lambda conn: conn.execute(
                select(outbox.c.id, outbox.c.position).order_by(outbox.c.id)
            ).all()
        )
    ]


async def test_committed_events_get_consecutive_positions_in_id_order(store: Store) -> None:
    for _ in range(3):
        emit(store)

    numbered = await Sequencer(store.database).run_once()

    assert numbered == 3
    assert [position for _, position in positions(store.database)] == [1, 2, 3]
    assert await Sequencer(store.database).run_once() == 0


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """Only PostgreSQL lets two writers commit out of id order (SQLite's take turns)."""
    with provisioned_database("postgres", tmp_path) as url:
        yield url


@pytest.mark.postgres
def test_an_event_committed_late_comes_after_every_position_already_read(
    postgres_url: str,
) -> None:
    database = Database(postgres_url)
    try:
        early = database.engine.connect()
        early_tx = early.begin()
        early.execute(outbox.insert().values(**_row("early")))  # takes the lower id
        database.run_write(lambda conn: conn.execute(outbox.insert().values(**_row("late"))))

        database.run_write(sequence_pending)
        first = database.run_read(lambda conn: read_after(conn, 0, limit=10))
        early_tx.commit()
        early.close()
        database.run_write(sequence_pending)
        second = database.run_read(lambda conn: read_after(conn, first[-1].position, limit=10))
    finally:
        database.dispose()

    assert [e.event.subject for e in first] == ["order/late"]
    assert [e.event.subject for e in second] == ["order/early"]
    assert second[0].position > first[-1].position


@pytest.mark.postgres
def test_concurrent_sequencers_never_give_one_position_twice(postgres_url: str) -> None:
    database = Database(postgres_url)
    try:
        rows = [_row(f"e{n}") for n in range(400)]
        database.run_write(lambda conn: conn.execute(outbox.insert(), rows))
        start = threading.Barrier(4)

        def sequence_in_small_batches() -> None:
            start.wait()
            while database.run_write(lambda conn: sequence_pending(conn, limit=7)):
                pass

        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(sequence_in_small_batches) for _ in range(4)]:
                future.result()
        numbered = positions(database)
    finally:
        database.dispose()

    assert sorted(p for _, p in numbered if p is not None) == list(range(1, 401))
    # Positions follow ids: the sequencers took turns, each numbering the oldest rows left.
    assert [p for _, p in numbered] == list(range(1, 401))


async def test_the_feed_pages_by_cursor_with_channel_and_type_filters(store: Store) -> None:
    emit(store, channel="webshop")
    emit(store, channel="amazon")
    emit(store, type="exception.opened", channel="webshop")
    emit(store, channel="webshop")
    await Sequencer(store.database).run_once()
    feed = EventFeed(store.database)

    first = await feed.page(after=0, limit=1, channel="webshop", types=["order.accepted"])
    rest = await feed.page(
        after=first.next_position, limit=10, channel="webshop", types=["order.accepted"]
    )
    nothing_new = await feed.page(
        after=rest.next_position, limit=10, channel="webshop", types=["order.accepted"]
    )

    assert [e.position for e in first.events] == [1]
    assert [e.position for e in rest.events] == [4]
    assert nothing_new.events == []
    assert nothing_new.next_position == rest.next_position


def _row(subject: str) -> dict[str, object]:

    event = EventEnvelope(
        type="order.accepted",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        source="test",
        subject=f"order/{subject}",
    )
    return {
        "event_id": str(event.id),
        "type": event.type,
        "version": 1,
        "source": event.source,
        "subject": event.subject,
        "channel": None,
        "occurred_at": event.occurred_at,
        "data": event.data,
    }
