"""A unit of work commits its business change and its outbox events together, or neither."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import RFC_4122, UUID

import pytest
from sqlalchemy import Connection, insert, select

from contracts import EventEnvelope
from gateway_infra.clock import ManualClock
from gateway_infra.correlation import correlation_id_var
from gateway_infra.envelopes import new_event_ids
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of, event_of
from gateway_infra.scheduler import schedule
from gateway_infra.tables import outbox, timers
from gateway_infra.unit_of_work import Store, UnitOfWork
from system_api.tables import document_sequences


class Boom(Exception):
    """Raised by a unit of work that must roll back."""


@pytest.fixture
def correlation_id() -> Iterator[str]:
    token = correlation_id_var.set("corr-test-42")
    yield "corr-test-42"
    correlation_id_var.reset(token)


def outbox_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(select(outbox, *ENVELOPE_COLUMNS).order_by(outbox.c.id)).all())


def sequence_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(document_sequences.c.name)).scalars())


def timer_keys(conn: Connection) -> list[str]:
    return list(conn.execute(select(timers.c.key)).scalars())


def open_sequence_and_announce(uow: UnitOfWork) -> EventEnvelope:
    uow.conn.execute(insert(document_sequences).values(name="order", prefix="ORD-", next_value=1))
    return uow.emit(
        "sequence.opened",
        source="system_api",
        subject="sequence/order",
        channel="webshop",
        data={"prefix": "ORD-", "next_value": 1},
    )


async def test_events_are_in_the_outbox_after_commit_with_the_correlation_id(
    store: Store, clock: ManualClock, correlation_id: str
) -> None:
    emitted = await store.write(open_sequence_and_announce)

    rows = await store.read(outbox_rows)
    assert len(rows) == 1
    row = rows[0]
    assert row.event_id == str(emitted.id)
    assert row.type == "sequence.opened"
    assert row.version == 1
    assert row.source == "system_api"
    assert row.subject == "sequence/order"
    assert row.channel == "webshop"
    assert row.correlation_id == correlation_id
    assert row.causation_id == correlation_id
    assert row.occurred_at == clock.now()
    assert await store.read(sequence_names) == ["order"]


async def test_a_unit_of_work_that_raises_commits_neither_its_change_nor_its_events(
    store: Store, clock: ManualClock, correlation_id: str
) -> None:
    def change_then_fail(uow: UnitOfWork) -> None:
        open_sequence_and_announce(uow)
        schedule(
            uow.conn,
            kind="reservation.expire",
            key="res-1",
            due_at=uow.now + timedelta(minutes=15),
            now=uow.now,
        )
        uow.emit("reservation.held", source="process_api", subject="reservation/res-1", data={})
        raise Boom("the change is abandoned")

    with pytest.raises(Boom):
        await store.write(change_then_fail)

    assert await store.read(outbox_rows) == []
    assert await store.read(sequence_names) == []
    assert await store.read(timer_keys) == []


async def test_events_emitted_in_a_failed_unit_of_work_do_not_leak_into_the_next_one(
    store: Store, correlation_id: str
) -> None:
    def fail(uow: UnitOfWork) -> None:
        uow.emit("ghost.event", source="process_api", subject="ghost/1", data={})
        raise Boom("rolled back")

    with pytest.raises(Boom):
        await store.write(fail)
    await store.write(open_sequence_and_announce)

    assert [r.type for r in await store.read(outbox_rows)] == ["sequence.opened"]


async def test_the_stored_envelope_round_trips_to_an_equal_event_envelope(
    store: Store, correlation_id: str
) -> None:
    emitted = await store.write(open_sequence_and_announce)

    (row,) = await store.read(outbox_rows)
    restored = event_of(row)

    assert restored == emitted
    assert restored.correlation_id == correlation_id
    assert restored.occurred_at.utcoffset() == timedelta(0)


async def test_events_are_stored_in_the_order_they_were_emitted(store: Store) -> None:
    def emit_three(uow: UnitOfWork) -> None:
        for n in range(3):
            uow.emit("item.counted", source="process_api", subject=f"item/{n}", data={"n": n})

    await store.write(emit_three)

    rows = await store.read(outbox_rows)
    assert [r.subject for r in rows] == ["item/0", "item/1", "item/2"]
    assert [r.data for r in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_an_explicit_causation_id_is_kept_next_to_the_correlation_id(
    store: Store, correlation_id: str
) -> None:
    def emit_caused(uow: UnitOfWork) -> None:
        uow.emit(
            "order.accepted",
            source="process_api",
            subject="order/ord-1",
            causation_id="evt-upstream-7",
            data={},
        )

    await store.write(emit_caused)

    (row,) = await store.read(outbox_rows)
    assert row.correlation_id == correlation_id
    assert row.causation_id == "evt-upstream-7"


async def test_without_a_correlation_id_events_are_stored_with_none(store: Store) -> None:
    assert correlation_id_var.get() is None

    await store.write(open_sequence_and_announce)

    (row,) = await store.read(outbox_rows)
    assert row.correlation_id is None
    assert row.causation_id is None


def test_write_sync_commits_events_with_the_current_correlation_id(
    store: Store, correlation_id: str
) -> None:
    store.write_sync(open_sequence_and_announce)

    rows = store.database.run_read(outbox_rows)
    assert [r.correlation_id for r in rows] == [correlation_id]


async def test_a_unit_of_work_without_events_writes_nothing_to_the_outbox(store: Store) -> None:
    def change_only(uow: UnitOfWork) -> None:
        uow.conn.execute(
            insert(document_sequences).values(name="invoice", prefix="INV-", next_value=1)
        )

    await store.write(change_only)

    assert await store.read(outbox_rows) == []
    assert await store.read(sequence_names) == ["invoice"]


def emit_in_batches(uow: UnitOfWork, batches: int, fail: bool = False) -> None:
    for batch in range(batches):
        for n in range(3):
            uow.emit("batch.item", source="test", subject=f"item/{batch}-{n}", data={})
        uow.flush_events()
    uow.emit("batch.done", source="test", subject="item/done", data={})
    if fail:
        raise Boom


async def test_events_flushed_during_a_unit_of_work_commit_with_it_in_emission_order(
    store: Store,
) -> None:
    await store.write(lambda uow: emit_in_batches(uow, 2))

    rows = await store.read(outbox_rows)

    assert [r.subject for r in rows] == [
        "item/0-0",
        "item/0-1",
        "item/0-2",
        "item/1-0",
        "item/1-1",
        "item/1-2",
        "item/done",
    ]


async def test_events_flushed_during_a_unit_of_work_roll_back_with_it(store: Store) -> None:
    with pytest.raises(Boom):
        await store.write(lambda uow: emit_in_batches(uow, 2, fail=True))

    assert await store.read(outbox_rows) == []


async def test_events_flushed_during_a_unit_of_work_keep_the_order_they_concern(
    store: Store,
) -> None:
    def order_of(_conn: Connection, subject: str, _data: Any) -> tuple[str, str | None] | None:
        return ("ord_1", "origin-1") if subject.startswith("order/") else None

    store.order_of = order_of

    def emit(uow: UnitOfWork) -> None:
        uow.emit("order.received", source="test", subject="order/ord_1", data={})
        uow.flush_events()
        uow.emit("order.accepted", source="test", subject="order/ord_1", data={})
        uow.emit("batch.done", source="test", subject="item/done", data={})

    await store.write(emit)

    rows = await store.read(outbox_rows)
    assert [(r.type, r.order_id, r.origin_correlation_id) for r in rows] == [
        ("order.received", "ord_1", "origin-1"),
        ("order.accepted", "ord_1", "origin-1"),
        ("batch.done", None, None),
    ]


def emit_bulk(uow: UnitOfWork) -> list[str]:
    uow.emit("batch.started", source="test", subject="item/start", data={})
    return uow.emit_many(
        "stock.counted",
        source="test",
        subjects=["item/1", 'item/"2" caf\u00e9', "item/3"],
        channels=["webshop", None, "amazon_de"],
        data=['{"sku": "MUG", "count": 3}', '{"sku": "caf\\u00e9 \\"2\\"", "count": null}', "{}"],
    )


async def test_events_emitted_many_at_once_are_stored_as_the_envelope_model_dumps_them(
    store: Store, clock: ManualClock, correlation_id: str
) -> None:
    ids = await store.write(emit_bulk)

    rows = (await store.read(outbox_rows))[1:]
    expected = [
        EventEnvelope(
            id=UUID(event_id),
            type="stock.counted",
            occurred_at=clock.now(),
            correlation_id=correlation_id,
            causation_id=correlation_id,
            source="test",
            subject=subject,
            channel=channel,
            data=data,
        )
        for event_id, subject, channel, data in [
            (ids[0], "item/1", "webshop", {"sku": "MUG", "count": 3}),
            (ids[1], 'item/"2" caf\u00e9', None, {"sku": 'caf\u00e9 "2"', "count": None}),
            (ids[2], "item/3", "amazon_de", {}),
        ]
    ]
    envelopes = [envelope_of(row) or {} for row in rows]
    assert envelopes == [e.model_dump(mode="json") for e in expected]
    assert [list(envelope) for envelope in envelopes] == [list(EventEnvelope.model_fields)] * 3
    assert [event_of(row) for row in rows] == expected
    assert [(r.event_id, r.type, r.version, r.source, r.subject, r.channel) for r in rows] == [
        (str(e.id), e.type, 1, "test", e.subject, e.channel) for e in expected
    ]
    assert {
        (r.correlation_id, r.causation_id, r.order_id, r.origin_correlation_id, r.occurred_at)
        for r in rows
    } == {(correlation_id, correlation_id, None, None, clock.now())}


async def test_events_emitted_many_at_once_follow_those_emitted_before_with_time_ordered_ids(
    store: Store,
) -> None:
    ids = await store.write(emit_bulk)
    more = await store.write(emit_bulk)

    rows = await store.read(outbox_rows)
    assert [r.subject for r in rows] == ["item/start", "item/1", 'item/"2" caf\u00e9', "item/3"] * 2
    assert [r.event_id for r in rows if r.type == "stock.counted"] == ids + more
    assert len(set(ids + more)) == 6
    assert {UUID(event_id).version for event_id in ids + more} == {7}
    assert sorted(ids) == ids
    assert sorted(more) == more


async def test_events_emitted_many_at_once_are_stored_in_their_order_however_many_they_are(
    store: Store, clock: ManualClock, correlation_id: str
) -> None:
    count = 1234  # several multi-row statements on SQLite, the last one shorter

    def emit(uow: UnitOfWork) -> list[str]:
        return uow.emit_many(
            "stock.counted",
            source="test",
            subjects=[f"item/{n}" for n in range(count)],
            channels=["webshop" if n % 3 else None for n in range(count)],
            data=[f'{{"n": {n}}}' for n in range(count)],
        )

    ids = await store.write(emit)

    rows = await store.read(outbox_rows)
    assert [r.event_id for r in rows] == ids
    assert [(r.subject, r.channel, r.data) for r in rows] == [
        (f"item/{n}", "webshop" if n % 3 else None, {"n": n}) for n in range(count)
    ]
    assert {
        (r.type, r.version, r.source, r.correlation_id, r.causation_id, r.occurred_at) for r in rows
    } == {("stock.counted", 1, "test", correlation_id, correlation_id, clock.now())}


async def test_events_emitted_many_at_once_roll_back_with_their_unit_of_work(
    store: Store,
) -> None:
    def emit_then_fail(uow: UnitOfWork) -> None:
        emit_bulk(uow)
        raise Boom

    with pytest.raises(Boom):
        await store.write(emit_then_fail)

    assert await store.read(outbox_rows) == []


@pytest.mark.parametrize(
    ("subject", "channel"),
    [("", "webshop"), ("item/\x07", "webshop"), ("x" * 257, None), ("item/1", "Web Shop")],
)
async def test_events_emitted_many_at_once_refuse_what_the_envelope_refuses(
    store: Store, subject: str, channel: str | None
) -> None:
    with pytest.raises(ValueError):
        EventEnvelope(
            type="stock.counted",
            occurred_at=store.clock.now(),
            source="test",
            subject=subject,
            channel=channel,
        )
    with pytest.raises(ValueError):
        await store.write(
            lambda uow: uow.emit_many(
                "stock.counted",
                source="test",
                subjects=[subject],
                channels=[channel],
                data=["{}"],
            )
        )

    assert await store.read(outbox_rows) == []


def test_event_ids_made_in_bulk_are_unique_and_ordered_by_time_then_count() -> None:
    before = time.time_ns() // 1_000_000
    batch = new_event_ids(100_000)
    after = time.time_ns() // 1_000_000

    ids = [UUID(text) for text in batch]
    assert len(set(ids)) == len(ids)
    assert {(u.version, u.variant) for u in ids} == {(7, RFC_4122)}
    assert sorted(batch) == batch
    assert before <= ids[0].int >> 80 <= ids[-1].int >> 80 <= after


async def test_commit_callbacks_run_in_order_once_the_work_has_committed(store: Store) -> None:
    seen: list[str] = []

    def work(uow: UnitOfWork) -> None:
        open_sequence_and_announce(uow)
        uow.on_commit(lambda: seen.append("first"))
        uow.on_commit(lambda: seen.append("second"))
        assert seen == []  # nothing before the commit

    await store.write(work)

    assert seen == ["first", "second"]
    assert await store.read(sequence_names) == ["order"]


async def test_commit_callbacks_of_work_that_rolls_back_never_run(store: Store) -> None:
    seen: list[str] = []

    def work(uow: UnitOfWork) -> None:
        open_sequence_and_announce(uow)
        uow.on_commit(lambda: seen.append("committed"))
        raise Boom

    with pytest.raises(Boom):
        await store.write(work)

    assert seen == []
    assert await store.read(sequence_names) == []
