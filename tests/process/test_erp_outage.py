"""An ERP outage never loses an order or accepts it early: it waits and the scheduler retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from gateway import Gateway, build_app
from gateway_infra.clock import ManualClock
from tests.conftest import UvicornThread, free_port, make_settings, start_gateway
from tests.factories import order_payload, seed_products
from tests.process.conftest import system_api_settings


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API is a separate uvicorn service, not running at first."""
    port = free_port()
    system_side = start_gateway(make_settings(database_url), clock)
    settings = make_settings(
        database_url,
        system_api_timeout_seconds=1.0,
        **system_api_settings(system_side, f"http://127.0.0.1:{port}"),
    )
    built = start_gateway(settings, clock)
    built.system_side = system_side  # type: ignore[attr-defined]
    built.system_port = port  # type: ignore[attr-defined]
    yield built
    await built.aclose()
    await system_side.aclose()


async def test_order_waits_while_the_erp_is_down_and_is_accepted_once_it_is_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    deferred = await client.post("/process/v1/orders", json=order_payload("CH-OUT-1"))
    assert deferred.status_code == 202, deferred.text
    order_id = deferred.json()["order_id"]
    assert deferred.json()["status"] == "reserved"

    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1  # retried, ERP still down
    still_waiting = (await client.get(f"/process/v1/orders/{order_id}")).json()
    assert still_waiting["status"] == "reserved"

    system_side: Gateway = gateway.system_side  # type: ignore[attr-defined]
    server = UvicornThread(
        build_app(system_side, run_background=False),
        port=gateway.system_port,  # type: ignore[attr-defined]
    ).start()
    try:
        clock.advance(timedelta(minutes=10))  # past the retry backoff, within token lifetime
        assert await gateway.scheduler.run_due() == 1
        accepted = (await client.get(f"/process/v1/orders/{order_id}")).json()
    finally:
        server.stop()

    assert accepted["status"] == "accepted"
    assert [h["to_status"] for h in accepted["history"]] == [
        "received",
        "reserved",
        "validated",
        "accepted",
    ]
    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0  # nothing left to retry
