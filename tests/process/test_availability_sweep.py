"""The periodic availability sweep and republication when a channel's profile changes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.tables import outbox, timers
from process_api.inventory.repository import report_on_hand_many, reserve_lines
from process_api.inventory.service import SWEEP_TIMER
from tests.process.channels.builders import profile


def availability_events(gateway: Gateway) -> int:
    return gateway.database.run_read(
        lambda conn: conn.execute(
            select(func.count()).where(outbox.c.type == "availability.changed")
        ).scalar_one()
    )


async def published(gateway: Gateway, channel: str, sku: str) -> int | None:
    return next(
        (
            item.published_quantity
            for item in await gateway.inventory.channel_availability(channel, [sku])
        ),
        None,
    )


async def test_the_sweep_publishes_a_stock_change_whose_publication_was_lost(
    gateway: Gateway,
) -> None:
    await gateway.channels.put(profile("webshop"), actor="test", expected_version=None)
    await gateway.inventory.report_on_hand_many({"MUG": 10}, gateway.clock.now())
    assert await published(gateway, "webshop", "MUG") == 10
    # A change committed without its publication (the process stopped in between).
    gateway.store.write_sync(lambda uow: report_on_hand_many(uow, {"MUG": 7}, uow.now))

    changes = await gateway.inventory.sweep()

    assert [(c.channel, c.sku, c.quantity) for c in changes] == [("webshop", "MUG", 7)]
    assert await gateway.inventory.sweep() == []


async def test_the_sweep_releases_a_reservation_whose_expiry_timer_was_lost(
    gateway: Gateway, clock: ManualClock
) -> None:
    await gateway.channels.put(profile("webshop"), actor="test", expected_version=None)
    await gateway.inventory.report_on_hand_many({"MUG": 10}, clock.now())
    gateway.store.write_sync(
        lambda uow: reserve_lines(
            uow,
            order_id="ord_lost",
            channel="webshop",
            channel_order_id="LOST-1",
            lines=[("1", "MUG", 4)],
            expires_at=uow.now + timedelta(hours=1),
        )
    )
    gateway.store.write_sync(
        lambda uow: uow.conn.execute(timers.delete().where(timers.c.key == "ord_lost"))
    )
    clock.advance(timedelta(hours=2))

    await gateway.inventory.sweep()

    assert (await gateway.inventory.position("MUG")).reserved == 0
    assert await published(gateway, "webshop", "MUG") == 10


async def test_the_sweep_runs_on_its_interval_through_the_scheduler(
    gateway: Gateway, clock: ManualClock
) -> None:
    await gateway.availability_sweep.ensure_scheduled()
    await gateway.channels.put(profile("webshop"), actor="test", expected_version=None)
    gateway.store.write_sync(lambda uow: report_on_hand_many(uow, {"MUG": 3}, uow.now))

    clock.advance(timedelta(seconds=gateway.settings.availability_sweep_seconds))
    ran = await gateway.scheduler.run_due()

    assert ran == 1
    assert await published(gateway, "webshop", "MUG") == 3
    next_due = gateway.database.run_read(
        lambda conn: conn.execute(
            select(timers.c.due_at).where(timers.c.kind == SWEEP_TIMER)
        ).scalar_one()
    )
    assert next_due == clock.now() + timedelta(seconds=gateway.settings.availability_sweep_seconds)


async def test_a_changed_profile_republishes_its_channel_only(gateway: Gateway) -> None:
    await gateway.channels.put(profile("webshop"), actor="test", expected_version=None)
    await gateway.channels.put(profile("amazon"), actor="test", expected_version=None)
    await gateway.inventory.report_on_hand_many({"MUG": 10, "PLATE": 4}, gateway.clock.now())
    before = availability_events(gateway)

    await gateway.channels.put(
        profile("amazon", availability={"buffer": 3}), actor="test", expected_version=None
    )

    assert availability_events(gateway) == before + 2
    assert await published(gateway, "amazon", "MUG") == 7
    assert await published(gateway, "amazon", "PLATE") == 1
    assert await published(gateway, "webshop", "MUG") == 10
    # The same profile again changes nothing and publishes nothing.
    await gateway.channels.put(
        profile("amazon", availability={"buffer": 3}), actor="test", expected_version=None
    )
    assert availability_events(gateway) == before + 2
