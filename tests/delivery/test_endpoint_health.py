"""Endpoint health: deliveries past their maximum age die, endpoints failing too long are
disabled (with an exception for a person) and resume in order once enabled."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.exceptions import ExceptionStatus, Severity
from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState, SubscriptionState
from gateway_infra.settings import Settings
from process_api.deliveries import ENDPOINT_DISABLED, WORKFLOW
from process_api.exceptions import list_exceptions
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    delivery_settings,
    emit,
    pump,
    pump_until_settled,
    subscribe,
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return delivery_settings(
        database_url,
        webhook_max_attempts=100,
        webhook_max_age_seconds=60,
        webhook_disable_after_seconds=120,
    )


async def test_a_delivery_still_failing_after_the_maximum_age_is_dead(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    await emit(gateway, "order.accepted", "order/ord_1")
    await pump(gateway)

    rounds = 0
    while (await all_deliveries(gateway))[0].state is DeliveryState.PENDING:
        await pump(gateway)
        clock.advance(timedelta(seconds=4))
        rounds += 1
        assert rounds < 40

    [delivery] = await all_deliveries(gateway)
    assert delivery.state is DeliveryState.DEAD
    assert delivery.dead_at is not None
    assert timedelta(seconds=60) <= delivery.dead_at - delivery.created_at < timedelta(seconds=70)
    assert delivery.attempts < 100


async def test_an_endpoint_failing_for_the_configured_period_is_disabled_with_an_exception(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    made = await subscribe(gateway, receiver)
    subscription_id = made.subscription.subscription_id
    receiver.failing = True
    for n in range(40):
        await emit(gateway, "order.accepted", f"order/ord_{n}")
        await pump(gateway)
        clock.advance(timedelta(seconds=4))
        current = await gateway.webhooks.subscriptions.get(subscription_id)
        assert current is not None
        if current.state is SubscriptionState.DISABLED:
            break

    assert current is not None
    assert current.state is SubscriptionState.DISABLED
    assert current.disabled_reason is not None and "HTTP 503" in current.disabled_reason
    exceptions = await gateway.store.read(lambda conn: list_exceptions(conn, workflow=WORKFLOW))
    [raised] = [e for e in exceptions if e.code == ENDPOINT_DISABLED]
    assert raised.subject == f"webhook/{subscription_id}"
    assert raised.channel == "webshop"
    assert raised.status is ExceptionStatus.OPEN
    assert raised.severity in (Severity.HIGH, Severity.CRITICAL)

    # Nothing is sent while it is disabled; once enabled, what waited goes out.
    calls_before = len(receiver.calls)
    late = await emit(gateway, "order.shipped", "order/ord_0")
    clock.advance(timedelta(seconds=4))
    await pump(gateway)
    assert len(receiver.calls) == calls_before
    receiver.failing = False
    await gateway.webhooks.subscriptions.enable(subscription_id)
    await pump_until_settled(gateway, clock)
    states = {d.state for d in await all_deliveries(gateway)}
    assert DeliveryState.PENDING not in states
    # Created while disabled: not delivered (a re-send of the period would bring it).
    assert str(late.id) not in {e["id"] for e in receiver.accepted}
