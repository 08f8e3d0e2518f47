"""Two uvicorn worker processes on one PostgreSQL and one Redis behave as one gateway.

`retail-gateway serve` with GATEWAY_WORKERS=2: every request opens its own connection, so the
kernel hands requests to both workers. Both run the outbox sequencer, the webhook sender and the
scheduler. What must hold across them: one shared quota per client, one order per Idempotency-Key,
no oversold stock, every timer fired once, every event delivered once and read once through the
feed in commit order.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.channel import ChannelProfile
from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES, PROCESS_SCOPES
from gateway_infra.clock import SystemClock
from process_api.order_to_cash.service import PENDING_EXPIRY_TIMER
from tests.conftest import (
    GatewayProcess,
    UvicornThread,
    fetch_token,
    make_settings,
    provisioned_database,
    skip_or_fail,
    start_gateway,
)
from tests.delivery.conftest import Receiver
from tests.factories import product, seed_products

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SKU = "MUG-RED-350"  # the contended one
PENDING_SKU = "LAMP-DESK-01"
ON_HAND = 20
ORDERS = 40
PENDING_ORDERS = 6
SAME_KEY_POSTS = 20
TIGHT_QUOTA = 10
TIERS = {
    "standard": {"burst": 100_000, "sustained": 1_000_000},
    "tight": {"burst": 100_000, "sustained": TIGHT_QUOTA},
}
WEBSHOP = ChannelProfile(
    channel="webshop",
    name="Own webshop",
    currency="EUR",
    acknowledgement_deadline=timedelta(hours=1),
    pending_reservation_expiry=timedelta(seconds=2),
)
WAIT_SECONDS = 30


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        skip_or_fail(
            "Redis tests need TEST_REDIS_URL, e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/15"
        )
    assert url is not None
    return url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with provisioned_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    server = UvicornThread(endpoint.app())
    endpoint.url = server.url
    server.start()
    try:
        yield endpoint
    finally:
        server.stop()


def v2_order(channel_order_id: str, sku: str = SKU) -> dict[str, Any]:
    return {
        "channel_order_id": channel_order_id,
        "currency": "EUR",
        "lines": [
            {
                "line_id": "1",
                "sku": sku,
                "quantity": 1,
                "unit_price": {"amount_minor": 1290, "currency": "EUR"},
            }
        ],
    }


def is_json(line: str) -> bool:
    return line.startswith("{")


async def fresh(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a connection of its own, so the two workers each take a share."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.request(method, path, **kwargs)


async def eventually(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS} s: {what}")
        await asyncio.sleep(0.2)


async def prepare(setup: Gateway, receiver: Receiver) -> dict[str, tuple[str, str]]:
    seed_products(setup, product(SKU), on_hand=ON_HAND)
    seed_products(setup, product(PENDING_SKU, price="59.00"), on_hand=100)
    setup.channels.seed_sync([WEBSHOP], actor="test")
    made = await setup.webhooks.subscriptions.create(
        channel="webshop", url=f"{receiver.url}/hook", event_types=["order.accepted"]
    )
    receiver.secrets.append(made.secret)
    clients = {}
    for name, kind, scopes, channel, tier in (
        ("webshop", ClientKind.PARTNER, PARTNER_SCOPES, "webshop", "standard"),
        ("tight", ClientKind.PARTNER, PARTNER_SCOPES, "webshop", "tight"),
        ("ops", ClientKind.INTERNAL, PROCESS_SCOPES, None, "standard"),
    ):
        record, secret = setup.clients.add(
            name=name, kind=kind, scopes=scopes, channel=channel, throttle_tier=tier
        )
        clients[name] = (record.client_id, secret)
    return clients


async def test_two_worker_processes_on_one_postgresql_and_redis_act_as_one_gateway(
    postgres_url: str, redis_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    setup = start_gateway(
        make_settings(postgres_url, webhook_allow_loopback=True, throttle_tiers=TIERS),
        SystemClock(),
    )
    try:
        clients = await prepare(setup, receiver)
    finally:
        await setup.aclose()
    log_path = tmp_path / "gateway.log"

    with GatewayProcess(
        postgres_url,
        log_path,
        workers=2,
        REDIS_URL=redis_url,
        GATEWAY_LOG_LEVEL="INFO",
        GATEWAY_THROTTLE_TIERS=json.dumps(TIERS),
        GATEWAY_SCHEDULER_POLL_SECONDS="0.2",
        GATEWAY_WEBHOOK_POLL_SECONDS="0.2",
        GATEWAY_WEBHOOK_ALLOW_LOOPBACK="true",
    ) as served:
        url = served.url
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            tokens = {name: await fetch_token(http, *pair) for name, pair in clients.items()}
        partner = {"Authorization": f"Bearer {tokens['webshop']}"}
        ops = {"Authorization": f"Bearer {tokens['ops']}"}

        # Throttling: one quota for the client, counted in Redis by both workers.
        tight = {"Authorization": f"Bearer {tokens['tight']}"}
        throttled = await asyncio.gather(
            *(
                fresh(url, "GET", "/partner/v2/orders/ord_none", headers=tight)
                for _ in range(2 * TIGHT_QUOTA)
            )
        )

        # Idempotency: one key sent many times at once makes one order.
        same_key = {**partner, "Idempotency-Key": '"scale-same-key"'}
        replays = await asyncio.gather(
            *(
                fresh(url, "POST", "/partner/v2/orders", json=v2_order("SAME-1"), headers=same_key)
                for _ in range(SAME_KEY_POSTS)
            )
        )

        # Reservations: twice as many orders as units, all at once.
        contended = await asyncio.gather(
            *(
                fresh(
                    url,
                    "POST",
                    "/partner/v2/orders",
                    json=v2_order(f"SCALE-{n:03d}"),
                    headers={**partner, "Idempotency-Key": f'"{uuid.uuid4()}"'},
                )
                for n in range(ORDERS)
            )
        )

        # Timers: pending orders the channel never confirms expire after two seconds.
        pending = await asyncio.gather(
            *(
                fresh(
                    url,
                    "POST",
                    "/process/v1/orders",
                    json={
                        "channel": "webshop",
                        "pending": True,
                        **v2_order(f"PENDING-{n}", PENDING_SKU),
                        "lines": [
                            {
                                "line_id": "1",
                                "sku": PENDING_SKU,
                                "quantity": 1,
                                "unit_price": {"amount": "59.00", "currency": "EUR"},
                            }
                        ],
                    },
                    headers=ops,
                )
                for n in range(PENDING_ORDERS)
            )
        )
        assert all(r.status_code in (201, 202) for r in pending), [r.text for r in pending]
        pending_ids = [r.json()["order_id"] for r in pending]

        async def all_expired() -> bool:
            states = await asyncio.gather(
                *(fresh(url, "GET", f"/process/v1/orders/{i}", headers=ops) for i in pending_ids)
            )
            return all(s.json()["status"] == "cancelled" for s in states)

        await eventually(all_expired, "every pending order expired")

        created = [r for r in contended if r.status_code == 201]
        first = [
            r for r in replays if r.status_code == 201 and "idempotent-replayed" not in r.headers
        ]
        accepted_ids = {r.json()["order_id"] for r in created + first}

        # Outbox relay and webhook sender: each accepted order's event reaches the receiver.
        await asyncio.to_thread(receiver.wait_for_accepted, len(accepted_ids), timeout=WAIT_SECONDS)

        # Event cursors: the feed, read in small pages, gives every event once, in order.
        feed: list[dict[str, Any]] = []
        cursor = "0"
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=partner) as http:
            while True:
                page = (
                    await http.get("/partner/v2/events", params={"after": cursor, "limit": 7})
                ).json()
                feed.extend(page["items"])
                if page["next_cursor"] == cursor:
                    break
                cursor = page["next_cursor"]
        position = (await fresh(url, "GET", f"/process/v1/inventory/{SKU}", headers=ops)).json()

    throttled_statuses = Counter(r.status_code for r in throttled)
    assert throttled_statuses == {404: TIGHT_QUOTA, 429: TIGHT_QUOTA}, throttled_statuses

    assert len(first) == 1, [r.status_code for r in replays]
    assert all(
        r.status_code == 409 or r.json()["order_id"] == first[0].json()["order_id"] for r in replays
    ), [r.status_code for r in replays]

    contended_statuses = Counter(r.status_code for r in contended)
    # The same-key order holds one unit of the stock as well.
    assert contended_statuses == {201: ON_HAND - 1, 409: ORDERS - ON_HAND + 1}, contended_statuses
    assert position["on_hand"] - position["reserved"] == 0, position

    delivered = [c.event for c in receiver.calls if c.status == 204]
    assert Counter(e["id"] for e in delivered).most_common(1)[0][1] == 1
    assert {e["data"]["order_id"] for e in delivered} == accepted_ids
    assert all(c.verified for c in receiver.calls)

    ids = [e["id"] for e in feed]
    assert len(ids) == len(set(ids)), "an event came twice through the feed"
    accepted_in_feed = [e["data"]["order_id"] for e in feed if e["type"] == "order.accepted"]
    assert sorted(accepted_in_feed) == sorted(accepted_ids)
    received_in_feed = {e["data"]["order_id"] for e in feed if e["type"] == "order.received"}
    assert accepted_ids <= received_in_feed
    for event in feed:  # every order's own events in the order they happened
        if event["type"] == "order.accepted":
            order_events = [e["type"] for e in feed if e["subject"] == event["subject"]]
            assert order_events.index("order.received") < order_events.index("order.accepted")

    runs = [
        record
        for record in map(json.loads, filter(is_json, log_path.read_text().splitlines()))
        if record.get("message") == "timer ran" and record.get("kind") == PENDING_EXPIRY_TIMER
    ]
    fired = Counter(record["key"] for record in runs)
    assert fired == dict.fromkeys(pending_ids, 1), fired
    print(
        f"\n2 workers: throttled {dict(throttled_statuses)}, orders {dict(contended_statuses)}, "
        f"{len(delivered)} webhooks, {len(feed)} feed events, pending expiry timers run by "
        f"{len({r['owner'] for r in runs})} scheduler(s)"
    )
