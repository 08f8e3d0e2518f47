"""Resolving a disabled webhook endpoint's exception with `replay`, through the process API: once
the endpoint is enabled again its dead letters go out and the exception resolves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState, SubscriptionState
from process_api.deliveries import ENDPOINT_DISABLED, WORKFLOW
from process_api.exceptions import list_exceptions
from tests.conftest import start_gateway
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    delivery_settings,
    emit,
    pump,
    pump_until_settled,
    subscribe,
)
from tests.delivery.conftest import receiver as receiver  # the fixture
from tests.process.exceptions.support import ROUTING


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))  # the receiver checks the signature's timestamp


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    settings = delivery_settings(
        database_url,
        exception_routing=ROUTING,
        webhook_max_attempts=100,
        webhook_max_age_seconds=60,
        webhook_disable_after_seconds=120,
    )
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()


async def test_replay_resolves_a_disabled_endpoints_exception_by_sending_its_dead_letters(
    gateway: Gateway, client: httpx.AsyncClient, receiver: Receiver, clock: ManualClock
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
    dead = {d.event_id for d in await all_deliveries(gateway) if d.state is DeliveryState.DEAD}
    assert dead
    [raised] = [
        e
        for e in await gateway.store.read(lambda conn: list_exceptions(conn, workflow=WORKFLOW))
        if e.code == ENDPOINT_DISABLED
    ]
    resolve = f"/process/v1/exceptions/{raised.exception_id}/resolve"

    while_disabled = await client.post(resolve, json={"action": "replay"})
    receiver.failing = False
    await gateway.webhooks.subscriptions.enable(subscription_id)
    replayed = await client.post(resolve, json={"action": "replay", "note": "partner fixed it"})
    await pump_until_settled(gateway, clock)

    assert while_disabled.status_code == 409, while_disabled.text
    assert while_disabled.json()["code"] == "exception-action-not-applicable"
    assert "enable it" in while_disabled.json()["detail"]
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["status"] == "resolved"
    last = body["history"][-1]
    assert (last["action"], last["status"], last["note"]) == (
        "replay",
        "resolved",
        "partner fixed it",
    )
    assert dead <= {e["id"] for e in receiver.accepted}
    assert all(d.state is not DeliveryState.DEAD for d in await all_deliveries(gateway))
    again = await client.post(resolve, json={"action": "replay"})
    assert again.status_code == 409
