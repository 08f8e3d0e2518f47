"""With the system API served over HTTP and its process stopped, release and shipments answer
202 and are completed by the scheduler once it is back; invoicing follows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from gateway import Gateway, build_app
from gateway_infra.clock import ManualClock
from tests.conftest import UvicornThread, free_port, make_settings, start_gateway
from tests.process.conftest import system_api_settings
from tests.process.fulfilment.support import accepted_order, package, shipment


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API is a separate uvicorn service that the test starts and stops."""
    port = free_port()
    system_side = start_gateway(make_settings(database_url), clock)
    settings = make_settings(
        database_url,
        # Down means connection refused (at once); once the backend is back, its first calls
        # may be slow on a loaded machine, and a timeout there would fail the story.
        system_api_timeout_seconds=10.0,
        **system_api_settings(system_side, f"http://127.0.0.1:{port}"),
    )
    built = start_gateway(settings, clock)
    built.system_side = system_side  # type: ignore[attr-defined]
    built.system_port = port  # type: ignore[attr-defined]
    yield built
    await built.aclose()
    await system_side.aclose()


def system_api(gateway: Gateway) -> UvicornThread:
    system_side: Gateway = gateway.system_side  # type: ignore[attr-defined]
    return UvicornThread(
        build_app(system_side, run_background=False),
        port=gateway.system_port,  # type: ignore[attr-defined]
    ).start()


async def _status(client: httpx.AsyncClient, order_id: str) -> str:
    status: str = (await client.get(f"/process/v1/orders/{order_id}")).json()["status"]
    return status


async def test_release_and_shipment_wait_for_the_system_api_and_complete_when_it_is_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    server = system_api(gateway)
    try:
        order_id = await accepted_order(client, "HTTP-1")
    finally:
        server.stop()

    deferred = await client.post(f"/process/v1/orders/{order_id}/release")
    assert deferred.status_code == 202, deferred.text
    clock.advance(timedelta(minutes=2))
    server = system_api(gateway)
    try:
        assert await gateway.scheduler.run_due() == 1
    finally:
        server.stop()
    assert await _status(client, order_id) == "released"

    waiting = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", "MUG-RED-350", 1))),
    )
    assert waiting.status_code == 202, waiting.text
    assert await _status(client, order_id) == "released"
    clock.advance(timedelta(minutes=2))
    server = system_api(gateway)
    try:
        assert await gateway.scheduler.run_due() == 1  # the WMS confirms the package
        assert await _status(client, order_id) == "shipped"
        assert await gateway.scheduler.run_due() == 1  # the shipment is invoiced
    finally:
        server.stop()

    assert await _status(client, order_id) == "invoiced"
    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0
