"""Per-partner throttling at the edge: the 429 boundary and the RateLimit fields, in memory and on
Redis shared by two worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import SystemClock
from gateway_infra.settings import Settings
from tests.conftest import (
    BASE_URL,
    GatewayProcess,
    fetch_token,
    make_settings,
    register_and_authorize,
    skip_or_fail,
    start_gateway,
)
from tests.partner.conftest import Caller

READ = "/partner/v2/orders/ord_none"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        throttle_tiers={
            "standard": {"burst": 100, "sustained": 5},
            "premium": {"burst": 3, "burst_window_seconds": 30, "sustained": 1000},
        },
    )


def fields(header: str) -> dict[str, dict[str, int]]:
    """Parse `"burst";r=3;t=1, "sustained";r=5;t=60` into {name: {param: value}}."""
    parsed: dict[str, dict[str, int]] = {}
    for item in header.split(","):
        name, *params = item.strip().split(";")
        parsed[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return parsed


async def test_the_request_past_the_sustained_quota_gets_429_with_retry_after(
    webshop: Caller,
) -> None:
    answers = [await webshop.http.get(READ) for _ in range(6)]

    assert [a.status_code for a in answers] == [404] * 5 + [429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/too-many-requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    policy = fields(answers[0].headers["ratelimit-policy"])
    assert policy == {"burst": {"q": 100, "w": 1}, "sustained": {"q": 5, "w": 60}}
    remaining = [fields(a.headers["ratelimit"])["sustained"]["r"] for a in answers]
    assert remaining == [4, 3, 2, 1, 0, 0]


async def test_the_burst_limit_refuses_before_the_sustained_one(
    gateway: Gateway, app: FastAPI
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        _, headers = await register_and_authorize(
            gateway,
            http,
            kind=ClientKind.PARTNER,
            scopes=frozenset(PARTNER_SCOPES),
            channel="webshop",
            tier="premium",
        )
        answers = [await http.get(READ, headers=headers) for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert fields(answers[2].headers["ratelimit"])["burst"]["r"] == 0
    assert re.fullmatch(
        r'"burst";q=3;w=30, "sustained";q=1000;w=60', answers[0].headers["ratelimit-policy"]
    )


async def test_partners_do_not_share_a_quota(webshop: Caller, marketplace: Caller) -> None:
    for _ in range(5):
        await webshop.http.get(READ)

    assert (await webshop.http.get(READ)).status_code == 429
    assert (await marketplace.http.get(READ)).status_code == 404


@pytest.mark.redis
async def test_two_worker_processes_share_one_quota_through_redis(
    database_url: str, tmp_path: Path
) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        skip_or_fail(
            "Redis tests need TEST_REDIS_URL, e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/15"
        )
    assert redis_url is not None
    setup = start_gateway(make_settings(database_url), SystemClock())
    record, secret = setup.clients.add(
        name="webshop", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    await setup.aclose()
    limits = json.dumps({"standard": {"burst": 1000, "sustained": 20}})

    with GatewayProcess(
        database_url,
        tmp_path / "gateway.log",
        workers=2,
        REDIS_URL=redis_url,
        GATEWAY_THROTTLE_TIERS=limits,
    ) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            token = await fetch_token(http, record.client_id, secret)

        async def one() -> int:
            # A connection per request, so both workers take a share of them.
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
                response = await http.get(READ, headers={"Authorization": f"Bearer {token}"})
                return response.status_code

        statuses = await asyncio.gather(*(one() for _ in range(40)))

    assert statuses.count(404) == 20, statuses
    assert statuses.count(429) == 20, statuses
