"""Webhook delivery in /metrics: attempts by outcome as the sender makes them, deliveries by state
and the age of the oldest pending one as stored."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway, build_app
from gateway_infra.clock import ManualClock
from tests.conftest import BASE_URL
from tests.delivery.conftest import Receiver, emit, pump, pump_until_settled, subscribe
from tests.scrape import Samples, scrape


async def metrics(gateway: Gateway) -> Samples:
    transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        return await scrape(http)


async def test_attempts_are_counted_by_outcome_and_pending_deliveries_by_age(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    before = await metrics(gateway)
    receiver.fail_next = 2
    await emit(gateway, "order.accepted", "order/ord_m1", order_id="ord_m1")

    await pump(gateway)
    clock.advance(timedelta(seconds=3))
    failing = await metrics(gateway)
    await pump_until_settled(gateway, clock)
    settled = await metrics(gateway)

    def attempts(samples: Samples, outcome: str) -> float:
        return samples.value("gateway_webhook_delivery_attempts_total", outcome=outcome) - (
            before.value("gateway_webhook_delivery_attempts_total", outcome=outcome)
        )

    assert attempts(failing, "failed") == 1
    assert failing.value("gateway_webhook_deliveries", state="pending") == 1
    assert failing.value("gateway_webhook_oldest_pending_delivery_age_seconds") == 3
    assert (attempts(settled, "failed"), attempts(settled, "succeeded")) == (2, 1)
    assert (
        settled.value("gateway_webhook_delivery_duration_seconds_count", outcome="succeeded") >= 1
    )
    assert settled.value("gateway_webhook_deliveries", state="delivered") == 1
    assert settled.get("gateway_webhook_deliveries", state="pending") is None
    assert settled.value("gateway_webhook_oldest_pending_delivery_age_seconds") == 0
