"""Several gateway processes relay and send together: no delivery is sent twice while its lease
runs, a claim left by a process that died is sent once the lease has run out, and an endpoint
never has more calls in flight than its limit."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState
from gateway_infra.delivery.tables import attempts
from gateway_infra.settings import Settings
from tests.conftest import start_gateway
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    delivery_settings,
    emit,
    pending,
    subscribe,
)

EVENTS = 120
ORDERS = 60


@pytest.fixture
def settings(database_url: str) -> Settings:
    return delivery_settings(database_url, webhook_max_in_flight_per_endpoint=64)


@pytest.fixture
async def other(settings: Settings, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A second gateway process on the same database (its own engine, its own sender id)."""
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()


async def attempt_count(gateway: Gateway) -> int:
    return await gateway.store.read(
        lambda conn: int(conn.execute(select(func.count()).select_from(attempts)).scalar_one())
    )


async def test_two_relays_and_two_senders_never_send_one_delivery_twice(
    gateway: Gateway, other: Gateway, receiver: Receiver
) -> None:
    await subscribe(gateway, receiver)
    emitted: dict[str, list[str]] = {}
    for n in range(EVENTS):
        order = f"ord_{n % ORDERS}"
        event = await emit(gateway, "order.accepted", f"order/{order}", order_id=order)
        emitted.setdefault(order, []).append(str(event.id))
    await gateway.sequencer.run_once()

    await asyncio.gather(gateway.webhooks.relay.run_once(), other.webhooks.relay.run_once())
    for _ in range(EVENTS):
        await asyncio.gather(
            gateway.webhooks.sender.run_until_idle(), other.webhooks.sender.run_until_idle()
        )
        if not await pending(gateway):
            break

    calls = Counter(c.headers["webhook-id"] for c in receiver.calls)
    assert len(calls) == EVENTS
    assert set(calls.values()) == {1}
    assert await attempt_count(gateway) == EVENTS
    delivered = await all_deliveries(gateway)
    assert len(delivered) == EVENTS
    assert {(d.state, d.attempts) for d in delivered} == {(DeliveryState.DELIVERED, 1)}
    for order, ids in emitted.items():
        assert [e["id"] for e in receiver.accepted if e["data"]["order_id"] == order] == ids


async def test_a_claim_left_by_a_process_that_died_is_sent_once_its_lease_runs_out(
    gateway: Gateway, other: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    event = await emit(gateway, "order.accepted", "order/ord_1")
    await gateway.sequencer.run_once()
    await gateway.webhooks.relay.run_once()
    # The other process claims the delivery and is killed before it sends anything.
    [claimed] = await other.webhooks.sender.claim(10)

    before_expiry = await gateway.webhooks.sender.run_once()
    clock.advance(timedelta(seconds=gateway.settings.webhook_lease_seconds))
    after_expiry = await gateway.webhooks.sender.run_once()

    assert claimed.event_id == str(event.id)
    assert (before_expiry, after_expiry) == (0, 1)
    assert [c.headers["webhook-id"] for c in receiver.calls] == [str(event.id)]
    [delivery] = await all_deliveries(gateway)
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 2)
    [attempt] = await gateway.webhooks.admin.attempts(delivery.delivery_id) or []
    assert attempt.attempt == 2
    assert attempt.sender == gateway.webhooks.sender.owner
