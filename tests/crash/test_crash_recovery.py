"""SIGKILL the gateway process again and again while orders arrive and webhooks go out: nothing
acknowledged is lost or doubled, and every event reaches the partner's receiver.

The client keeps its own record: an order answered 201 or 202 was acknowledged and must exist
exactly once afterwards; an order whose request died with the process is sent again, with the
same Idempotency-Key, after the restart (what a marketplace does). The receiver is a real HTTP
server on loopback that verifies every signature with the `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import SystemClock
from gateway_infra.tables import outbox
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from process_api.tables import orders
from tests.conftest import GatewayProcess, UvicornThread, make_settings, start_gateway
from tests.factories import product, seed_products

pytestmark = [pytest.mark.crash, pytest.mark.slow]

SEED = 20261127
KILLS = 5
ORDERS_PER_ROUND = 30
IN_FLIGHT = 30
SKU = "MUG-RED-350"
CHANNEL = "webshop"
EVENT_TYPES = ["order.received", "order.accepted", "order.rejected"]
TIERS = {
    "standard": {"burst": 100_000, "sustained": 1_000_000},
    "premium": {"burst": 100_000, "sustained": 1_000_000},
}
DRAIN_LIMIT_SECONDS = 120


# ---------------------------------------------------------------- the partner's receiver


@dataclass
class Receiver:
    """Verifies each delivery's signature and records what arrived, in arrival order."""

    secret: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks")
        async def hook(request: Request) -> Response:
            body = await request.body()
            assert self.secret is not None
            try:
                Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:  # a forged or broken delivery: refuse, count it
                with self.lock:
                    self.refused += 1
                return Response(status_code=400)
            await asyncio.sleep(0.01)  # a receiver that takes its time: batches stay in flight
            event = json.loads(body)
            with self.lock:
                self.received.append(
                    {
                        "webhook_id": request.headers["webhook-id"],
                        "id": event["id"],
                        "type": event["type"],
                        "subject": event["subject"],
                    }
                )
            return Response(status_code=204)

        return app

    def ids(self) -> set[str]:
        with self.lock:
            return {r["id"] for r in self.received}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, UvicornThread]]:
    hooks = Receiver()
    server = UvicornThread(hooks.app()).start()
    yield hooks, server
    server.stop()


# ---------------------------------------------------------------- the marketplace client


@dataclass
class Marketplace:
    """Sends orders, keeps its own record of what the gateway acknowledged."""

    client_id: str
    secret: str
    acknowledged: dict[str, int] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    answers: Counter[int] = field(default_factory=Counter)
    max_in_flight: int = 0

    async def token(self, http: httpx.AsyncClient) -> dict[str, str]:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.secret),
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def send(self, http: httpx.AsyncClient, channel_order_ids: list[str]) -> None:
        """Submit the orders at once; an answer lost with the process leaves the order to send
        again; a 2xx/202 answer is recorded as acknowledged."""
        gate = asyncio.Semaphore(IN_FLIGHT)
        in_flight = 0

        async def one(channel_order_id: str) -> None:
            nonlocal in_flight
            async with gate:
                in_flight += 1
                self.max_in_flight = max(self.max_in_flight, in_flight)
                try:
                    answer = await http.post(
                        "/partner/v2/orders",
                        json=order(channel_order_id),
                        headers={"Idempotency-Key": f'"{channel_order_id}"'},
                    )
                except httpx.TransportError:
                    self.unanswered.add(channel_order_id)
                    return
                finally:
                    in_flight -= 1
            self.answers[answer.status_code] += 1
            if answer.status_code in (200, 201, 202):
                self.acknowledged[channel_order_id] = answer.status_code
                self.unanswered.discard(channel_order_id)
            elif answer.status_code == 409 and "order-rejected" in answer.text:
                self.unanswered.discard(channel_order_id)
            else:  # 503 while shutting down, 409 while the first attempt still runs: retry
                self.unanswered.add(channel_order_id)

        await asyncio.gather(*(one(c) for c in channel_order_ids))


def order(channel_order_id: str) -> dict[str, Any]:
    return {
        "channel_order_id": channel_order_id,
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


# ---------------------------------------------------------------- setup and checks


@pytest.fixture
async def offline(database_url: str) -> AsyncIterator[Gateway]:
    """The gateway's database prepared from outside the gateway process (as the CLI would)."""
    built = start_gateway(make_settings(database_url, throttle_tiers=TIERS), SystemClock())
    yield built
    await built.aclose()


def gateway_environment() -> dict[str, str]:
    return {
        "GATEWAY_THROTTLE_TIERS": json.dumps(TIERS),
        "GATEWAY_WEBHOOK_ALLOW_LOOPBACK": "true",
        "GATEWAY_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "GATEWAY_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "1",
        # A delivery claimed by a killed process is sent again once its lease runs out.
        "GATEWAY_WEBHOOK_TIMEOUT_SECONDS": "2",
        "GATEWAY_WEBHOOK_LEASE_SECONDS": "3",
        "GATEWAY_SCHEDULER_POLL_SECONDS": "0.2",
        # A request killed mid-flight holds its Idempotency-Key this long before a retry may
        # take it over.
        "GATEWAY_REQUEST_TIMEOUT_SECONDS": "5",
        "GATEWAY_IDEMPOTENCY_LEASE_SECONDS": "6",
    }


def start(database_url: str, log: Path) -> GatewayProcess:
    return GatewayProcess(database_url, log, workers=1, **gateway_environment()).__enter__()


def expected_event_ids(gateway: Gateway) -> set[str]:
    return set(
        gateway.database.run_read(
            lambda conn: list(
                conn.execute(
                    select(outbox.c.event_id).where(
                        outbox.c.channel == CHANNEL, outbox.c.type.in_(EVENT_TYPES)
                    )
                ).scalars()
            )
        )
    )


async def test_nothing_acknowledged_is_lost_or_doubled_across_sigkills(
    offline: Gateway,
    database_url: str,
    receiver: tuple[Receiver, UvicornThread],
    tmp_path: Path,
) -> None:
    hooks, hook_server = receiver
    rng = random.Random(SEED)
    seed_products(offline, product(SKU), on_hand=100_000)
    offline.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="test")
    record, secret = offline.clients.add(
        name="crash-marketplace", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel=CHANNEL
    )
    market = Marketplace(record.client_id, secret)
    log = tmp_path / "gateway.log"
    kills: list[dict[str, Any]] = []
    started = time.monotonic()

    process = start(database_url, log)
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            http.headers.update(await market.token(http))
            created = await http.post(
                "/partner/v2/webhooks",
                json={"url": f"{hook_server.url}/hooks", "event_types": EVENT_TYPES},
                headers={"Idempotency-Key": f'"{uuid.uuid4()}"'},
            )
            assert created.status_code == 201, created.text
            hooks.secret = created.json()["secret"]

        next_order = 0
        for kill in range(KILLS):
            batch = sorted(market.unanswered) + [
                f"CRASH-{n:04d}" for n in range(next_order, next_order + ORDERS_PER_ROUND)
            ]
            next_order += ORDERS_PER_ROUND
            limits = httpx.Limits(max_connections=IN_FLIGHT + 4)
            async with httpx.AsyncClient(base_url=process.url, timeout=30, limits=limits) as http:
                http.headers.update(await market.token(http))
                sending = asyncio.create_task(market.send(http, batch))
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                delivered_before = len(hooks.ids())
                process.kill()
                await sending
            kills.append(
                {
                    "round": kill,
                    "sent": len(batch),
                    "acknowledged_so_far": len(market.acknowledged),
                    "unanswered": len(market.unanswered),
                    "waiting_for_delivery": len(expected_event_ids(offline)) - delivered_before,
                }
            )
            process = start(database_url, log)

        # After the last restart: the orders whose answers died are sent again until answered.
        phases = {"kills": time.monotonic() - started}
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            http.headers.update(await market.token(http))
            while market.unanswered:
                await market.send(http, sorted(market.unanswered))
                if market.unanswered:  # keys still held by requests that died: wait for the lease
                    await asyncio.sleep(0.5)
        phases["resent"] = time.monotonic() - started
        deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
        while time.monotonic() < deadline:
            if hooks.ids() >= expected_event_ids(offline) and not offline.database.run_read(
                lambda conn: conn.execute(
                    select(func.count()).where(outbox.c.position.is_(None))
                ).scalar_one()
            ):
                break
            await asyncio.sleep(0.2)
        phases["drained"] = time.monotonic() - started
    finally:
        process.__exit__(None, None, None)

    expected = expected_event_ids(offline)
    stored = offline.database.run_read(
        lambda conn: Counter(
            conn.execute(select(orders.c.channel_order_id).where(orders.c.channel == CHANNEL))
            .scalars()
            .all()
        )
    )
    received_per_order = offline.database.run_read(
        lambda conn: Counter(
            conn.execute(
                select(outbox.c.subject).where(
                    outbox.c.type == "order.received", outbox.c.channel == CHANNEL
                )
            )
            .scalars()
            .all()
        )
    )
    arrivals = Counter(r["id"] for r in hooks.received)
    print(
        f"\n[{database_url.split(':')[0]}] {len(kills)} SIGKILLs "
        f"(in flight up to {market.max_in_flight}): {kills}; answers {dict(market.answers)}; "
        f"{len(market.acknowledged)} orders acknowledged, {len(expected)} events, "
        f"{len(hooks.received)} deliveries received ({sum(n - 1 for n in arrivals.values())} "
        f"repeats), {hooks.refused} refused signatures; seconds since start: "
        f"{ {k: round(v, 1) for k, v in phases.items()} }"
    )

    assert len(kills) >= 5
    assert market.max_in_flight >= 20
    assert any(k["waiting_for_delivery"] > 0 for k in kills), "no kill hit the relay mid-batch"
    # Every acknowledged order exists exactly once, and so does its intake event.
    assert all(stored[c] == 1 for c in market.acknowledged), "acknowledged order lost or doubled"
    assert max(stored.values()) == 1
    assert max(received_per_order.values()) == 1
    # Each was validated once it was sent again, however its first request ended.
    accepted = offline.database.run_read(
        lambda conn: Counter(
            conn.execute(
                select(outbox.c.subject).where(
                    outbox.c.type == "order.accepted", outbox.c.channel == CHANNEL
                )
            )
            .scalars()
            .all()
        )
    )
    assert sorted(accepted) == sorted(received_per_order)
    assert max(accepted.values()) == 1
    # Every event reached the receiver, at least once; by id, exactly the events there are.
    assert hooks.refused == 0
    assert set(arrivals) == expected
    assert all(r["webhook_id"] == r["id"] for r in hooks.received)
