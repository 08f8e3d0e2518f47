"""Against a real uvicorn process: 50 identical POSTs in flight with one key create one order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from sqlalchemy import func, select

from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import SystemClock
from process_api.tables import orders
from tests.conftest import GatewayProcess, make_settings, start_gateway
from tests.factories import line, seed_products

GENEROUS_LIMITS = json.dumps({"standard": {"burst": 100_000, "sustained": 1_000_000}})


async def test_fifty_concurrent_posts_with_one_key_create_exactly_one_order(
    database_url: str, tmp_path: Path
) -> None:
    setup = start_gateway(make_settings(database_url), SystemClock())
    seed_products(setup)
    record, secret = setup.clients.add(
        name="webshop", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    payload = {"channel_order_id": "RACE-1", "currency": "EUR", "lines": [line()]}

    with GatewayProcess(
        database_url, tmp_path / "gateway.log", GATEWAY_THROTTLE_TIERS=GENEROUS_LIMITS
    ) as gateway:
        async with httpx.AsyncClient(
            base_url=gateway.url, limits=httpx.Limits(max_connections=60), timeout=30
        ) as http:
            token = (
                await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(record.client_id, secret),
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": '"race-key-1"'}
            responses = await asyncio.gather(
                *(http.post("/partner/v1/orders", json=payload, headers=headers) for _ in range(50))
            )

    count = setup.database.run_read(
        lambda conn: conn.execute(
            select(func.count()).select_from(orders).where(orders.c.channel_order_id == "RACE-1")
        ).scalar_one()
    )
    await setup.aclose()
    statuses = [r.status_code for r in responses]
    first = [
        r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    replays = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]

    assert count == 1
    assert len(first) == 1, statuses
    assert len(first) + len(replays) + len(in_flight) == 50, statuses
    assert all(r.json() == first[0].json() for r in replays)
    assert all(r.json()["type"] == "/problems/idempotency-key-in-flight" for r in in_flight)
    print(
        f"\n50 identical POSTs: 1 created, {len(replays)} replayed, "
        f"{len(in_flight)} in flight (409)"
    )
