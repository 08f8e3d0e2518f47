"""Events are kept for the retention period, then purged: never before the webhook relay has
passed them, never while a delivery of theirs is pending or dead, never the newest one."""

from __future__ import annotations

import functools
from datetime import timedelta

from sqlalchemy import select, update

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState
from gateway_infra.delivery.tables import deliveries
from gateway_infra.outbox import CursorPurged
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
        lambda conn: conn.execute(select(outbox_purges.c.purged_through)).scalar_one_or_none()
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
