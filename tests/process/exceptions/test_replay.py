"""Resolving a disabled webhook endpoint's exception with `replay`, through the process API and the
ops console: once the endpoint is enabled again its dead letters go out and the exception
resolves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState, SubscriptionState
from process_api.audit import AuditLog
from process_api.deliveries import ENDPOINT_DISABLED, WORKFLOW
from process_api.exceptions import list_exceptions
from tests.conftest import start_gateway
from tests.console.conftest import CONSOLE_URL, add_operator, form_token, sign_in
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


async def disabled_endpoint(gateway: Gateway, receiver: Receiver, clock: ManualClock) -> str:
    """A webhook whose receiver failed until the gateway disabled it, some deliveries dead."""
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
            return subscription_id
    raise AssertionError("the endpoint was not disabled")


async def test_replay_resolves_a_disabled_endpoints_exception_by_sending_its_dead_letters(
    gateway: Gateway, client: httpx.AsyncClient, receiver: Receiver, clock: ManualClock
) -> None:
    subscription_id = await disabled_endpoint(gateway, receiver, clock)
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


async def test_an_operator_resolves_it_with_replay_in_the_console(
    gateway: Gateway, app: FastAPI, receiver: Receiver, clock: ManualClock
) -> None:
    subscription_id = await disabled_endpoint(gateway, receiver, clock)
    dead = {d.event_id for d in await all_deliveries(gateway) if d.state is DeliveryState.DEAD}
    [raised] = await gateway.exceptions.list(workflow=WORKFLOW)
    receiver.failing = False
    await gateway.webhooks.subscriptions.enable(subscription_id)
    add_operator(gateway)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as browser:
        assert (await sign_in(browser)).status_code == 303
        page = await browser.get(f"/ops/exceptions/{raised.exception_id}")
        resolved = await browser.post(
            f"/ops/exceptions/{raised.exception_id}/resolve",
            data={"csrf_token": form_token(page.text), "action": "replay"},
        )
    await pump_until_settled(gateway, clock)

    assert dead
    assert '<option value="replay">replay</option>' in page.text
    assert resolved.status_code == 303, resolved.text
    assert "notice=resolved" in resolved.headers["location"]
    assert (await gateway.exceptions.require(raised.exception_id)).status.value == "resolved"
    assert dead <= {e["id"] for e in receiver.accepted}
    [entry] = await AuditLog(gateway.store).entries(action="exception.resolve.replay")
    assert entry.actor == "operator:alice"
