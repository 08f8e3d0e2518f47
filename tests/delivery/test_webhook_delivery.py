"""Webhook delivery end to end: outbox -> relay -> signed calls to a real receiver on loopback."""

from __future__ import annotations

from datetime import timedelta

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import AttemptOutcome, DeliveryState
from gateway_infra.delivery.sender import envelope_body
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    attempts_of,
    emit,
    pump,
    pump_until_settled,
    subscribe,
)


async def test_each_event_arrives_signed_with_its_event_id_as_webhook_id(
    gateway: Gateway, receiver: Receiver
) -> None:
    await subscribe(gateway, receiver)
    event = await emit(gateway, "order.accepted", "order/ord_1", order_id="ord_1")

    await pump(gateway)

    [call] = receiver.calls
    assert call.verified
    assert call.headers["webhook-id"] == str(event.id)
    assert call.headers["content-type"] == "application/json"
    assert call.event == event.model_dump(mode="json")
    # The bytes signed and sent: the envelope's fields in the model's order, compact JSON.
    assert call.body == envelope_body(event.model_dump(mode="json"))
    [delivery] = await all_deliveries(gateway)
    assert delivery.state is DeliveryState.DELIVERED
    [attempt] = await attempts_of(gateway, delivery.delivery_id)
    assert (attempt.outcome, attempt.status_code, attempt.attempt) == (
        AttemptOutcome.SUCCEEDED,
        204,
        1,
    )
    assert attempt.latency_ms >= 0


async def test_a_webhook_gets_its_channels_events_of_its_types_from_its_creation_on(
    gateway: Gateway, receiver: Receiver
) -> None:
    await emit(gateway, "order.accepted", "order/before", order_id="before")
    await pump(gateway)
    await subscribe(gateway, receiver, types=["order.accepted", "order.shipped"])
    wanted = await emit(gateway, "order.accepted", "order/ord_1")
    shipped = await emit(gateway, "order.shipped", "order/ord_1")
    await emit(gateway, "order.cancelled", "order/ord_2")
    await emit(gateway, "order.accepted", "order/ord_3", channel="marketplace")
    # Internal events never leave the gateway, whatever a subscription names.
    await emit(gateway, "inventory.reserved", "order/ord_1")

    await pump(gateway)

    assert [e["id"] for e in receiver.accepted] == [str(wanted.id), str(shipped.id)]


async def test_a_receiver_failing_for_a_while_gets_everything_once_in_order_per_order(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    steps = ("order.received", "order.accepted", "order.released", "order.shipped")
    emitted: dict[str, list[str]] = {}
    for step in steps:  # interleaved: each order's events are spread over the outbox
        for order in ("ord_a", "ord_b", "ord_c"):
            event = await emit(gateway, step, f"order/{order}", order_id=order)
            emitted.setdefault(order, []).append(str(event.id))
    for _ in range(3):
        await pump(gateway)
        clock.advance(timedelta(seconds=4))
    while_failing = [c.event["id"] for c in receiver.calls]

    receiver.failing = False
    await pump_until_settled(gateway, clock)

    # While it failed only the first event of each order was tried: later ones wait.
    assert set(while_failing) == {ids[0] for ids in emitted.values()}
    accepted = receiver.accepted
    assert sorted(e["id"] for e in accepted) == sorted(i for ids in emitted.values() for i in ids)
    for order, ids in emitted.items():
        assert [e["id"] for e in accepted if e["data"]["order_id"] == order] == ids
    assert all(d.state is DeliveryState.DELIVERED for d in await all_deliveries(gateway))


async def test_every_attempt_keeps_the_webhook_id_with_a_fresh_signature(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    receiver.fail_next = 2
    event = await emit(gateway, "order.accepted", "order/ord_1")

    await pump_until_settled(gateway, clock)

    calls = receiver.calls
    assert [c.status for c in calls] == [503, 503, 204]
    assert all(c.verified for c in calls)
    assert {c.headers["webhook-id"] for c in calls} == {str(event.id)}
    assert len({c.headers["webhook-timestamp"] for c in calls}) == 3
    assert len({c.headers["webhook-signature"] for c in calls}) == 3
    [delivery] = await all_deliveries(gateway)
    assert [
        (a.attempt, a.outcome, a.status_code)
        for a in await attempts_of(gateway, delivery.delivery_id)
    ] == [
        (1, AttemptOutcome.FAILED, 503),
        (2, AttemptOutcome.FAILED, 503),
        (3, AttemptOutcome.SUCCEEDED, 204),
    ]


async def test_retries_wait_longer_after_each_failure(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    await emit(gateway, "order.accepted", "order/ord_1")
    await pump(gateway)
    waits = []
    for _ in range(3):
        [delivery] = await all_deliveries(gateway)
        waits.append(delivery.next_attempt_at - clock.now())
        clock.set(delivery.next_attempt_at)
        await pump(gateway)

    # Full jitter between half and all of base * 2^(n-1), capped at the maximum delay.
    assert timedelta(seconds=0.5) <= waits[0] <= timedelta(seconds=1)
    assert timedelta(seconds=1) <= waits[1] <= timedelta(seconds=2)
    assert timedelta(seconds=2) <= waits[2] <= timedelta(seconds=4)


async def test_an_unreachable_endpoint_records_the_connection_error(
    gateway: Gateway, receiver: Receiver
) -> None:
    made = await gateway.webhooks.subscriptions.create(
        channel="webshop", url="http://127.0.0.1:9/hook", event_types=["order.accepted"]
    )
    await emit(gateway, "order.accepted", "order/ord_1")

    await pump(gateway)

    [delivery] = await all_deliveries(gateway)
    [attempt] = await attempts_of(gateway, delivery.delivery_id)
    assert delivery.subscription_id == made.subscription.subscription_id
    assert delivery.state is DeliveryState.PENDING
    assert attempt.outcome is AttemptOutcome.FAILED
    assert attempt.status_code is None
    assert attempt.error is not None and "ConnectError" in attempt.error


async def test_an_endpoint_gets_at_most_its_limit_of_calls_at_once(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    for n in range(12):
        await emit(gateway, "order.accepted", f"order/ord_{n}")
    await gateway.sequencer.run_once()
    await gateway.webhooks.relay.run_once()

    first = await gateway.webhooks.sender.claim(20)
    second = await gateway.webhooks.sender.claim(20)
    clock.advance(timedelta(seconds=gateway.settings.webhook_lease_seconds))
    after_leases = await gateway.webhooks.sender.claim(20)

    assert (len(first), len(second), len(after_leases)) == (4, 0, 4)
