"""Events are kept for the retention period, then purged: never before the webhook relay has
passed them, never while a delivery of theirs is pending or dead, never the newest one."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from gateway import Gateway
from gateway_infra import outbox as outbox_module
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState
from gateway_infra.delivery.tables import deliveries
from gateway_infra.event_retention import purge_batch
from gateway_infra.outbox import CursorPurged, FeedPage, SequencedEvent
from gateway_infra.tables import outbox, outbox_purges
from gateway_infra.unit_of_work import UnitOfWork
from tests.delivery.conftest import Receiver, emit, pump, pump_until_settled, subscribe


async def kept(gateway: Gateway) -> list[str]:
    """The subjects of the order events still kept, oldest first."""
    return [subject for subject in await every_subject(gateway) if subject.startswith("order/")]


async def every_subject(gateway: Gateway) -> list[str]:
    rows = await gateway.store.read(
        lambda conn: conn.execute(select(outbox.c.subject).order_by(outbox.c.id)).all()
    )
    return [row.subject for row in rows]


async def watermark(gateway: Gateway) -> int | None:
    return await gateway.store.read(
        lambda conn: conn.execute(
            select(outbox_purges.c.purged_through).where(outbox_purges.c.name == "events")
        ).scalar_one_or_none()
    )


def past_retention(gateway: Gateway, clock: ManualClock) -> None:
    clock.advance(timedelta(days=gateway.settings.event_retention_days, hours=1))


async def test_delivered_events_past_retention_are_purged_and_positions_continue(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    for n in (1, 2, 3):
        await emit(gateway, "order.accepted", f"order/{n}")
    await pump_until_settled(gateway, clock)
    past_retention(gateway, clock)

    before = await every_subject(gateway)  # the subscription's own event came first

    purged = await gateway.event_purge.purge()
    await emit(gateway, "order.accepted", "order/4")
    await gateway.sequencer.run_once()
    positions = await gateway.store.read(
        lambda conn: conn.execute(select(outbox.c.position).order_by(outbox.c.id)).all()
    )

    assert purged == len(before) - 1
    assert await kept(gateway) == ["order/3", "order/4"]  # the newest stays
    assert [row.position for row in positions] == [len(before), len(before) + 1]
    assert await watermark(gateway) == len(before) - 1


async def test_events_of_pending_and_dead_deliveries_are_kept(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    events = [await emit(gateway, "order.accepted", f"order/{n}") for n in (1, 2, 3, 4)]
    await pump_until_settled(gateway, clock)

    def mark(uow: UnitOfWork, event_id: str, state: DeliveryState) -> None:
        uow.conn.execute(
            update(deliveries).where(deliveries.c.event_id == event_id).values(state=state.value)
        )

    await gateway.store.write(
        functools.partial(mark, event_id=str(events[0].id), state=DeliveryState.DEAD)
    )
    await gateway.store.write(
        functools.partial(mark, event_id=str(events[1].id), state=DeliveryState.PENDING)
    )
    past_retention(gateway, clock)

    await gateway.event_purge.purge()

    assert await kept(gateway) == ["order/1", "order/2", "order/4"]


async def test_events_the_webhook_relay_has_not_passed_are_kept(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    await emit(gateway, "order.accepted", "order/1")
    await pump_until_settled(gateway, clock)
    await emit(gateway, "order.accepted", "order/2")
    await emit(gateway, "order.accepted", "order/3")
    await gateway.sequencer.run_once()  # numbered, not yet relayed
    past_retention(gateway, clock)

    await gateway.event_purge.purge()

    assert await kept(gateway) == ["order/2", "order/3"]


async def test_events_within_retention_are_kept(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    for n in (1, 2):
        await emit(gateway, "order.accepted", f"order/{n}")
    await pump_until_settled(gateway, clock)
    clock.advance(timedelta(days=gateway.settings.event_retention_days - 1))

    assert await gateway.event_purge.purge() == 0
    assert await kept(gateway) == ["order/1", "order/2"]


async def test_a_feed_cursor_older_than_the_purged_events_is_told_so(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    for n in (1, 2, 3, 4):
        await emit(gateway, "order.accepted", f"order/{n}")
    await pump(gateway)
    await pump_until_settled(gateway, clock)
    past_retention(gateway, clock)
    first = (await gateway.events.page(after=0, limit=10)).events[0].position
    await gateway.event_purge.purge()
    through = await watermark(gateway)
    assert through is not None

    try:
        await gateway.events.page(after=first, limit=10)
        refused = None
    except CursorPurged as exc:
        refused = exc
    from_start = await gateway.events.page(after=0, limit=10)
    from_watermark = await gateway.events.page(after=through, limit=10)

    assert refused is not None and refused.purged_through == through
    assert [e.event.subject for e in from_start.events] == ["order/4"]
    assert [e.event.subject for e in from_watermark.events] == ["order/4"]


async def test_after_a_410_reading_from_the_start_pages_on_past_events_still_kept(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    """Events kept for dead deliveries lie below the watermark: the feed starts above them."""
    await subscribe(gateway, receiver)
    events = [await emit(gateway, "order.accepted", f"order/{n}") for n in (1, 2, 3, 4, 5)]
    await pump_until_settled(gateway, clock)

    def mark_dead(uow: UnitOfWork, event_id: str) -> None:
        uow.conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == event_id)
            .values(state=DeliveryState.DEAD.value)
        )

    for event in events[:2]:
        await gateway.store.write(functools.partial(mark_dead, event_id=str(event.id)))
    past_retention(gateway, clock)
    await gateway.event_purge.purge()

    first = await gateway.events.page(after=0, limit=1, channel="webshop")
    second = await gateway.events.page(after=first.next_position, limit=1, channel="webshop")

    assert [e.event.subject for e in first.events] == ["order/5"]
    assert second.events == []
    assert await kept(gateway) == ["order/1", "order/2", "order/5"]


async def test_a_quiet_channels_cursor_is_not_refused_for_other_channels_purged_events(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    await emit(gateway, "order.accepted", "order/q", channel="quiet")
    await gateway.sequencer.run_once()
    cursor = (await gateway.events.page(after=0, limit=10, channel="quiet")).next_position
    for n in (1, 2, 3):
        await emit(gateway, "order.accepted", f"order/{n}")
    await pump_until_settled(gateway, clock)
    past_retention(gateway, clock)
    await emit(gateway, "order.accepted", "order/4")  # within retention
    await pump_until_settled(gateway, clock)
    await gateway.event_purge.purge()

    quiet = await gateway.events.page(after=cursor, limit=10, channel="quiet")

    assert await kept(gateway) == ["order/4"]
    assert quiet.events == [] and quiet.next_position == cursor


async def test_a_purge_committing_while_a_page_is_read_never_hides_events_silently(
    gateway: Gateway, receiver: Receiver, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Either the page holds every event after the cursor, or the reader is told (410). The
    purge deletes the subscription's event, the cursor's and the one after it."""
    await subscribe(gateway, receiver)
    for n in (1, 2, 3, 4, 5):
        await emit(gateway, "order.accepted", f"order/{n}")
    await pump_until_settled(gateway, clock)
    page = await gateway.events.page(after=0, limit=10, channel="webshop")
    cursor = page.events[0].position
    expected = [e.event.subject for e in page.events[1:]]
    past_retention(gateway, clock)
    unpatched = outbox_module.read_after

    def purge_first(conn: Connection, after: int, **kwargs: Any) -> list[SequencedEvent]:
        gateway.store.write_sync(
            lambda uow: purge_batch(uow, cutoff=uow.now - timedelta(days=1), limit=3)
        )
        return unpatched(conn, after, **kwargs)

    monkeypatch.setattr(outbox_module, "read_after", purge_first)
    try:
        answer: object = await gateway.events.page(after=cursor, limit=10, channel="webshop")
    except CursorPurged as exc:
        answer = exc

    if not isinstance(answer, CursorPurged):
        assert isinstance(answer, FeedPage)
        assert [e.event.subject for e in answer.events] == expected
