"""An ERP outage never loses an order or accepts it early: it waits and the scheduler retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from contracts import Money, OrderStatus
from contracts.exceptions import ExceptionRecord, ExceptionStatus, Severity
from gateway import Gateway, build_app
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from tests.conftest import UvicornThread, free_port, make_settings, start_gateway
from tests.factories import order_payload, seed_products
from tests.process.channels.builders import profile
from tests.process.conftest import system_api_settings


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API is a separate uvicorn service, not running at first."""
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


async def test_an_order_still_unacknowledged_near_its_deadline_raises_an_exception(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await gateway.channels.put(
        profile("webshop", acknowledgement_deadline=timedelta(hours=4)),
        actor="test",
        expected_version=None,
    )
    seed_products(gateway)
    received_at = clock.now()
    order_id = (await client.post("/process/v1/orders", json=order_payload("CH-ACK-1"))).json()[
        "order_id"
    ]

    clock.advance(timedelta(hours=2, minutes=59))
    while await gateway.scheduler.run_due():
        pass
    assert open_exceptions(gateway) == []
    clock.advance(timedelta(minutes=1))  # three quarters of the deadline
    while await gateway.scheduler.run_due():
        pass

    [raised] = open_exceptions(gateway)
    assert (raised.workflow, raised.code, raised.subject) == (
        "order_capture",
        "acknowledgement_at_risk",
        f"order/{order_id}",
    )
    assert raised.due_at == received_at + timedelta(hours=4)
    assert raised.severity is Severity.HIGH
    assert raised.money_at_risk == Money(amount=Decimal("12.90"), currency="EUR")
    assert (await gateway.orders.require(order_id)).status is OrderStatus.RESERVED

    await gateway.orders.cancel(order_id, actor="test", reason="customer gave up")
    assert open_exceptions(gateway) == []


async def test_an_order_acknowledged_in_time_raises_nothing(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    order_id = (await client.post("/process/v1/orders", json=order_payload("CH-ACK-2"))).json()[
        "order_id"
    ]
    await start_system_api(gateway)
    try:
        clock.advance(timedelta(minutes=5))
        while await gateway.scheduler.run_due():
            pass
    finally:
        await stop_system_api(gateway)
    assert (await gateway.orders.require(order_id)).status is OrderStatus.ACCEPTED

    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0
    assert open_exceptions(gateway) == []


def open_exceptions(gateway: Gateway) -> list[ExceptionRecord]:
    return gateway.database.run_read(
        lambda conn: list_exceptions(conn, status=ExceptionStatus.OPEN)
    )


async def start_system_api(gateway: Gateway) -> None:
    system_side: Gateway = gateway.system_side  # type: ignore[attr-defined]
    gateway.system_server = UvicornThread(  # type: ignore[attr-defined]
        build_app(system_side, run_background=False),
        port=gateway.system_port,  # type: ignore[attr-defined]
    ).start()


async def stop_system_api(gateway: Gateway) -> None:
    gateway.system_server.stop()  # type: ignore[attr-defined]
