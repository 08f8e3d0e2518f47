"""Order intake at scale: never oversold under concurrency, never lost or acknowledged early while
the ERP is down.

The oversell test runs `retail-gateway serve` as its own process on a file-backed database
(SQLite, and PostgreSQL with TEST_DATABASE_URL) and sends orders through the partner API with
real OAuth2 client credentials, at least 50 requests in flight at once. The ERP outage tests run
the gateway in-process with a ManualClock and its system API as a separate uvicorn service that is
not running while the orders arrive.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES, PROCESS_SCOPES
from gateway_infra.clock import ManualClock, SystemClock
from gateway_infra.tables import outbox, timers
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from process_api.tables import published_availability
from system_api.tables import erp_sales_orders
from tests.conftest import GatewayProcess, UvicornThread, free_port, make_settings, start_gateway
from tests.factories import line, order_payload, product, seed_products, seed_stock
from tests.process.conftest import system_api_settings

SKU = "MUG-RED-350"
CHANNELS = ("webshop", "marketplace")  # the demo profiles: shared pool, and percentage with floor
TIERS = {
    "standard": {"burst": 100_000, "sustained": 1_000_000},
    "premium": {"burst": 100_000, "sustained": 1_000_000},
}
TIME_LIMIT = timedelta(minutes=5)  # past every retry backoff, before any acknowledgement deadline


# ---------------------------------------------------------------- concurrent sending


@dataclass
class Burst:
    """Requests sent with at most `width` in flight, and what was seen of their concurrency."""

    width: int
    in_flight: int = 0
    max_in_flight: int = 0
    connections: set[Any] = field(default_factory=set)

    async def run(
        self, calls: Sequence[Callable[[], Awaitable[httpx.Response]]]
    ) -> list[httpx.Response]:
        gate = asyncio.Semaphore(self.width)

        async def one(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
            async with gate:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    response = await call()
                finally:
                    self.in_flight -= 1
                stream = response.extensions.get("network_stream")
                if stream is not None:
                    # The local address tells the connections apart: one per request in flight.
                    self.connections.add(stream.get_extra_info("client_addr"))
                return response

        return list(await asyncio.gather(*(one(call) for call in calls)))


def rejection_reasons(response: httpx.Response) -> list[str]:
    return [r["reason"] for r in response.json().get("rejections", [])]


# ---------------------------------------------------------------- oversell, real process

ON_HAND = 50
ORDERS = 200
IN_FLIGHT = 50


async def token(http: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    answer = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def all_orders(http: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    """Every order the process API lists for the query, page after page."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {**query, "limit": 200}
    while True:
        page = await http.get("/process/v1/orders", params=params)
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json().get("next_cursor")
        if not cursor:
            return items
        params["cursor"] = cursor


@pytest.fixture
async def offline(database_url: str) -> AsyncIterator[Gateway]:
    """The gateway's database prepared from outside the gateway process (as the CLI would)."""
    built = start_gateway(make_settings(database_url, throttle_tiers=TIERS), SystemClock())
    yield built
    await built.aclose()


@pytest.mark.slow
async def test_two_hundred_concurrent_orders_for_fifty_units_accept_exactly_fifty(
    offline: Gateway, database_url: str, tmp_path: Path
) -> None:
    seed_products(offline, product(SKU), on_hand=ON_HAND)
    offline.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="test")
    partners = {
        channel: offline.clients.add(
            name=channel, kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel=channel
        )
        for channel in CHANNELS
    }
    ops, ops_secret = offline.clients.add(
        name="ops", kind=ClientKind.INTERNAL, scopes=PROCESS_SCOPES
    )
    burst = Burst(width=IN_FLIGHT)

    started = time.monotonic()
    with GatewayProcess(
        database_url, tmp_path / "gateway.log", GATEWAY_THROTTLE_TIERS=json.dumps(TIERS)
    ) as gateway:
        async with httpx.AsyncClient(
            base_url=gateway.url,
            limits=httpx.Limits(max_connections=IN_FLIGHT + 14, max_keepalive_connections=64),
            timeout=30,
        ) as http:
            headers = {
                channel: await token(http, record.client_id, secret)
                for channel, (record, secret) in partners.items()
            }

            def submit(n: int) -> Callable[[], Awaitable[httpx.Response]]:
                channel = CHANNELS[n % len(CHANNELS)]
                body = {
                    "channel_order_id": f"SCALE-{n:03d}",
                    "currency": "EUR",
                    "lines": [
                        {
                            "line_id": "1",
                            "sku": SKU,
                            "quantity": 1,
                            "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                        }
                    ],
                }
                idempotency = {"Idempotency-Key": f'"scale-{n:03d}"'}
                return lambda: http.post(
                    "/partner/v2/orders", json=body, headers={**headers[channel], **idempotency}
                )

            responses = await burst.run([submit(n) for n in range(ORDERS)])
            sent = time.monotonic()

            http.headers.update(await token(http, ops.client_id, ops_secret))
            position = await http.get(f"/process/v1/inventory/{SKU}")
            listed = await all_orders(http)
    elapsed = time.monotonic() - started

    published = offline.database.run_read(
        lambda conn: {
            row.channel: row.quantity
            for row in conn.execute(
                select(published_availability).where(published_availability.c.sku == SKU)
            )
        }
    )
    sales_orders = offline.database.run_read(
        lambda conn: list(conn.execute(select(erp_sales_orders.c.reference)).scalars())
    )

    statuses = Counter(r.status_code for r in responses)
    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    print(
        f"\n[{database_url.split(':')[0]}] {ORDERS} orders, {burst.max_in_flight} in flight over "
        f"{len(burst.connections)} connections: {dict(statuses)} in {sent - started:.1f} s "
        f"(whole test {elapsed:.1f} s)"
    )

    assert burst.max_in_flight >= IN_FLIGHT
    assert len(burst.connections) >= IN_FLIGHT
    assert statuses == {201: ON_HAND, 409: ORDERS - ON_HAND}, statuses
    assert all(r.json()["status"] == "accepted" for r in accepted)
    for r in refused:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/order-rejected"), r.text
        assert rejection_reasons(r) == ["insufficient_stock"], r.text

    assert position.status_code == 200, position.text
    view = position.json()
    assert (view["on_hand"], view["reserved"], view["shortfall"]) == (ON_HAND, ON_HAND, 0)
    assert view["available"] == dict.fromkeys(CHANNELS, 0)
    assert published == dict.fromkeys(CHANNELS, 0)

    assert len(listed) == ORDERS
    by_status = Counter(o["status"] for o in listed)
    assert by_status == {"accepted": ON_HAND, "rejected": ORDERS - ON_HAND}
    accepted_ids = {r.json()["order_id"] for r in accepted}
    assert {o["order_id"] for o in listed if o["status"] == "accepted"} == accepted_ids
    assert sorted(sales_orders) == sorted(accepted_ids)


# ---------------------------------------------------------------- ERP outage at scale


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API (the ERP) is a separate uvicorn service, not running at first."""
    port = free_port()
    system_side = start_gateway(make_settings(database_url), clock)
    settings = make_settings(
        database_url,
        throttle_tiers=TIERS,
        # Down means connection refused (at once); once the backend is back, its first calls
        # may be slow on a loaded machine, and a timeout there would fail the story.
        system_api_timeout_seconds=10.0,
        **system_api_settings(system_side, f"http://127.0.0.1:{port}"),
    )
    built = start_gateway(settings, clock)
    await built.channels.seed(DEMO_CHANNEL_PROFILES, actor="test")
    built.system_side = system_side  # type: ignore[attr-defined]
    built.system_port = port  # type: ignore[attr-defined]
    yield built
    await built.aclose()
    await system_side.aclose()


def erp_back(gateway: Gateway) -> UvicornThread:
    system_side: Gateway = gateway.system_side  # type: ignore[attr-defined]
    return UvicornThread(
        build_app(system_side, run_background=False),
        port=gateway.system_port,  # type: ignore[attr-defined]
    ).start()


async def run_until_idle(gateway: Gateway, *, batch: int = 25) -> int:
    """Run due timers, batch after batch, until none is due; how many ran."""
    total = 0
    while ran := await gateway.scheduler.run_due(limit=batch):
        total += ran
    return total


def event_subjects(gateway: Gateway, type: str) -> Counter[str]:
    def read(conn: Connection) -> Counter[str]:
        return Counter(
            conn.execute(select(outbox.c.subject).where(outbox.c.type == type)).scalars()
        )

    return gateway.database.run_read(read)


def sales_order_references(gateway: Gateway) -> Counter[str]:
    return gateway.database.run_read(
        lambda conn: Counter(conn.execute(select(erp_sales_orders.c.reference)).scalars())
    )


def pending_timers(gateway: Gateway) -> int:
    return len(gateway.database.run_read(lambda conn: conn.execute(select(timers.c.id)).all()))


async def submit_all(
    client: httpx.AsyncClient, payloads: Sequence[dict[str, Any]]
) -> list[httpx.Response]:
    burst = Burst(width=len(payloads))
    responses = await burst.run(
        [functools.partial(client.post, "/process/v1/orders", json=p) for p in payloads]
    )
    assert burst.max_in_flight == len(payloads)
    return responses


OUTAGE_ORDERS = 100
RETRIED_WHILE_DOWN = 10


async def test_orders_arriving_while_the_erp_is_down_are_kept_and_accepted_once_when_it_is_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, product(SKU), on_hand=150)
    payloads = [order_payload(f"DOWN-{n:03d}") for n in range(OUTAGE_ORDERS)]

    answers = await submit_all(client, payloads)
    clock.advance(timedelta(minutes=1))
    # A round of retries while the ERP is still down (each spends its backoff: a few suffice).
    retried_while_down = await gateway.scheduler.run_due(limit=RETRIED_WHILE_DOWN)
    while_down = await all_orders(client)
    accepted_while_down = event_subjects(gateway, "order.accepted")
    sales_orders_while_down = sales_order_references(gateway)
    position_while_down = (await client.get(f"/process/v1/inventory/{SKU}")).json()

    server = erp_back(gateway)
    try:
        clock.advance(TIME_LIMIT)
        ran = await run_until_idle(gateway)
    finally:
        server.stop()
    after = await all_orders(client)
    position = (await client.get(f"/process/v1/inventory/{SKU}")).json()

    # Recorded and holding their stock, answered 202 and never acknowledged while the ERP is down.
    assert Counter(a.status_code for a in answers) == {202: OUTAGE_ORDERS}
    assert {a.json()["status"] for a in answers} == {"reserved"}
    order_ids = {a.json()["order_id"] for a in answers}
    assert len(order_ids) == OUTAGE_ORDERS
    assert retried_while_down == RETRIED_WHILE_DOWN
    assert {o["order_id"] for o in while_down} == order_ids
    assert {o["status"] for o in while_down} == {"reserved"}
    assert accepted_while_down == Counter()
    assert sales_orders_while_down == Counter()
    assert position_while_down["reserved"] == OUTAGE_ORDERS

    # Every one accepted once the ERP is back: one sales order and one acceptance each.
    assert ran == OUTAGE_ORDERS
    assert {o["order_id"] for o in after} == order_ids
    assert {o["status"] for o in after} == {"accepted"}
    assert all(
        [h["to_status"] for h in o["history"]] == ["received", "reserved", "validated", "accepted"]
        for o in after
    )
    assert event_subjects(gateway, "order.accepted") == Counter(
        f"order/{order_id}" for order_id in order_ids
    )
    assert sales_order_references(gateway) == Counter(order_ids)
    assert (position["on_hand"], position["reserved"]) == (150, OUTAGE_ORDERS)
    clock.advance(timedelta(days=1))
    assert await gateway.scheduler.run_due() == 0
    assert pending_timers(gateway) == 0


async def test_orders_the_erp_finds_invalid_once_back_are_rejected_and_give_their_stock_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    ghost = "GHOST-SKU-1"  # counted by the warehouse, unknown to the ERP's item master
    seed_products(gateway, product(SKU), on_hand=100)
    seed_stock(gateway, 100, ghost)
    valid = [order_payload(f"OK-{n:03d}") for n in range(80)]
    invalid = [order_payload(f"BAD-{n:03d}", line(sku=ghost, quantity=2)) for n in range(20)]

    answers = await submit_all(client, valid + invalid)
    held_while_down = (await client.get(f"/process/v1/inventory/{ghost}")).json()
    server = erp_back(gateway)
    try:
        clock.advance(TIME_LIMIT)
        ran = await run_until_idle(gateway)
    finally:
        server.stop()
    after = {o["channel_order_id"]: o for o in await all_orders(client)}
    mug = (await client.get(f"/process/v1/inventory/{SKU}")).json()
    ghost_after = (await client.get(f"/process/v1/inventory/{ghost}")).json()

    assert Counter(a.status_code for a in answers) == {202: 100}
    assert held_while_down["reserved"] == 40
    assert held_while_down["available"] == {
        p.channel: p.availability.available(100, 40) for p in DEMO_CHANNEL_PROFILES
    }
    assert ran == 100
    assert len(after) == 100
    assert {after[p["channel_order_id"]]["status"] for p in valid} == {"accepted"}
    for p in invalid:
        order = after[p["channel_order_id"]]
        assert order["status"] == "rejected"
        assert [r["reason"] for r in order["rejections"]] == ["unknown_sku"]
    rejected_ids = {after[p["channel_order_id"]]["order_id"] for p in invalid}
    accepted_ids = {after[p["channel_order_id"]]["order_id"] for p in valid}
    assert event_subjects(gateway, "order.rejected") == Counter(
        f"order/{order_id}" for order_id in rejected_ids
    )
    assert event_subjects(gateway, "order.accepted") == Counter(
        f"order/{order_id}" for order_id in accepted_ids
    )
    assert sales_order_references(gateway) == Counter(accepted_ids)
    assert (mug["on_hand"], mug["reserved"]) == (100, 80)
    assert (ghost_after["on_hand"], ghost_after["reserved"]) == (100, 0)
    assert ghost_after["available"] == {
        p.channel: p.availability.available(100, 0) for p in DEMO_CHANNEL_PROFILES
    }
