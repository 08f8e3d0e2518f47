"""Throttling: burst and sustained quotas per subject, RateLimit fields, shared Redis counters.

The behaviour tests run on the in-process storage and again on Redis when TEST_REDIS_URL is set
(each Redis test under a key prefix of its own, deleted afterwards). Windows are real time:
one test waits out a 1 s burst window, the shortest a tier can have.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError

from gateway_infra.problems import (
    BACKEND_UNAVAILABLE,
    PROBLEM_MEDIA_TYPE,
    TOO_MANY_REQUESTS,
    ProblemError,
    install_problem_handlers,
)
from gateway_infra.settings import ThrottleTier
from gateway_infra.throttle import (
    StateHeadersMiddleware,
    Throttle,
    ThrottleDecision,
    ThrottleUnavailable,
    _LocalWindows,
    _policies,
    add_response_headers,
    raise_if_throttled,
)
from tests.conftest import free_port, skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SMALL = ThrottleTier(burst=3, burst_window_seconds=1, sustained=5, sustained_window_seconds=60)
SMALL_POLICY = '"burst";q=3;w=1, "sustained";q=5;w=60'
STATE_MEMBER = re.compile(r'"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)')


@dataclass(frozen=True)
class RedisTarget:
    url: str
    key_prefix: str
    client: aredis.Redis


@asynccontextmanager
async def redis_target() -> AsyncIterator[RedisTarget]:
    """A reachable test Redis and a key prefix of this test's own, deleted afterwards."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        skip_or_fail(
            "Redis tests need TEST_REDIS_URL, e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/15"
        )
    assert url is not None
    client = aredis.from_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        skip_or_fail(f"Redis at TEST_REDIS_URL is not reachable: {exc}")
    prefix = f"rsg-test-{uuid.uuid4().hex[:12]}"
    try:
        yield RedisTarget(url, prefix, client)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis() -> AsyncIterator[RedisTarget]:
    async with redis_target() as target:
        yield target


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[Throttle]:
    """A Throttle on the in-process storage, and on Redis."""
    if request.param == "memory":
        built = Throttle(None)
        yield built
        await built.aclose()
        return
    async with redis_target() as target:
        built = Throttle(target.url, target.key_prefix)
        yield built
        await built.aclose()


def rate_limit_state(decision: ThrottleDecision) -> dict[str, tuple[int, int]]:
    """RateLimit parsed strictly: policy name -> (remaining r, reset t), in field order."""
    members = decision.headers["RateLimit"].split(", ")
    parsed: dict[str, tuple[int, int]] = {}
    for member in members:
        match = STATE_MEMBER.fullmatch(member)
        assert match is not None, f"malformed RateLimit member {member!r}"
        parsed[match["name"]] = (int(match["r"]), int(match["t"]))
    assert list(parsed) == ["burst", "sustained"]
    return parsed


async def checks(throttle: Throttle, count: int, subject: str = "client-1") -> list[bool]:
    return [(await throttle.check("partner", subject, SMALL)).allowed for _ in range(count)]


# ---------------------------------------------------------------- quotas and fields


async def test_fourth_request_in_a_burst_window_is_refused_with_retry_after(
    throttle: Throttle,
) -> None:
    allowed = [await throttle.check("partner", "client-1", SMALL) for _ in range(3)]
    refused = await throttle.check("partner", "client-1", SMALL)

    assert [d.allowed for d in allowed] == [True, True, True]
    assert [rate_limit_state(d)["burst"][0] for d in allowed] == [2, 1, 0]
    assert [rate_limit_state(d)["sustained"][0] for d in allowed] == [4, 3, 2]
    for decision in allowed:
        assert decision.retry_after is None
        assert "Retry-After" not in decision.headers
        assert decision.headers["RateLimit-Policy"] == SMALL_POLICY
        assert rate_limit_state(decision)["burst"][1] == 1
        assert 59 <= rate_limit_state(decision)["sustained"][1] <= 60

    assert not refused.allowed
    assert refused.retry_after == 1
    assert set(refused.headers) == {"RateLimit-Policy", "RateLimit", "Retry-After"}
    assert refused.headers["RateLimit-Policy"] == SMALL_POLICY
    assert refused.headers["Retry-After"] == "1"
    state = rate_limit_state(refused)
    assert state["burst"] == (0, 1)
    assert state["sustained"][0] == 2, "a refused request consumes no sustained quota"
    assert 59 <= state["sustained"][1] <= 60


async def test_after_the_burst_window_the_sustained_quota_still_counts(
    throttle: Throttle,
) -> None:
    assert await checks(throttle, 4) == [True, True, True, False]
    await asyncio.sleep(1.02)  # the burst window (1 s, the shortest a tier has) moves on

    decisions = [await throttle.check("partner", "client-1", SMALL) for _ in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    assert rate_limit_state(decisions[0])["burst"] == (2, 1), "a new burst window"
    assert rate_limit_state(decisions[0])["sustained"][0] == 1
    refused = decisions[-1]
    state = rate_limit_state(refused)
    assert state["burst"][0] == 1
    assert state["sustained"][0] == 0
    assert refused.retry_after is not None
    assert 57 <= refused.retry_after <= 60
    assert refused.headers["Retry-After"] == str(refused.retry_after)
    assert state["sustained"][1] == refused.retry_after


async def test_sustained_refusal_spends_no_burst_quota(throttle: Throttle) -> None:
    tier = ThrottleTier(burst=10, sustained=5, sustained_window_seconds=60)

    decisions = [await throttle.check("partner", "client-1", tier) for _ in range(7)]

    assert [d.allowed for d in decisions] == [True] * 5 + [False, False]
    for refused in decisions[5:]:
        state = rate_limit_state(refused)
        assert state["burst"][0] == 5
        assert state["sustained"][0] == 0
        assert refused.retry_after is not None
        assert 59 <= refused.retry_after <= 60


async def test_subjects_do_not_share_quota(throttle: Throttle) -> None:
    assert await checks(throttle, 4, "client-a") == [True, True, True, False]
    assert await checks(throttle, 4, "client-b") == [True, True, True, False]


async def test_namespaces_do_not_share_quota(throttle: Throttle) -> None:
    for _ in range(3):
        assert (await throttle.check("partner", "10.0.0.1", SMALL)).allowed
    assert not (await throttle.check("partner", "10.0.0.1", SMALL)).allowed

    assert (await throttle.check("token", "10.0.0.1", SMALL)).allowed


async def test_clear_gives_a_subject_its_quota_back(throttle: Throttle) -> None:
    assert await checks(throttle, 4) == [True, True, True, False]
    await throttle.clear("partner", "client-1", SMALL)
    assert await checks(throttle, 1) == [True]


async def test_a_namespace_with_a_slash_is_refused() -> None:
    throttle = Throttle(None)
    try:
        with pytest.raises(ValueError, match="namespace"):
            await throttle.check("partner/v1", "client-1", SMALL)
    finally:
        await throttle.aclose()


async def test_raise_if_throttled_raises_a_429_problem_with_the_fields(
    throttle: Throttle,
) -> None:
    for _ in range(3):
        raise_if_throttled(await throttle.check("partner", "client-1", SMALL))
    refused = await throttle.check("partner", "client-1", SMALL)

    with pytest.raises(ProblemError) as caught:
        raise_if_throttled(refused)

    assert caught.value.problem is TOO_MANY_REQUESTS
    assert caught.value.headers == refused.headers
    assert caught.value.headers["Retry-After"] == "1"


# ---------------------------------------------------------------- Redis outage


async def test_unreachable_redis_fails_open_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttle = Throttle(f"redis://127.0.0.1:{free_port()}/0", "rsg-outage")
    caplog.set_level(logging.WARNING, logger="gateway.throttle")
    try:
        decisions = [await throttle.check("partner", "client-1", SMALL) for _ in range(10)]
    finally:
        await throttle.aclose()

    assert all(d.allowed and d.retry_after is None for d in decisions)
    assert all(d.headers == {"RateLimit-Policy": SMALL_POLICY} for d in decisions)
    warnings = [r for r in caplog.records if r.name == "gateway.throttle"]
    assert len(warnings) == 1
    assert "letting requests through uncounted" in warnings[0].getMessage()


async def test_unreachable_redis_fails_closed_with_503_when_asked() -> None:
    throttle = Throttle(f"redis://127.0.0.1:{free_port()}/0", "rsg-outage", fail_open=False)
    try:
        for _ in range(2):
            with pytest.raises(ThrottleUnavailable) as caught:
                await throttle.check("partner", "client-1", SMALL)
            assert caught.value.problem is BACKEND_UNAVAILABLE
            assert caught.value.headers == {"Retry-After": "1"}
    finally:
        await throttle.aclose()


async def test_a_throttle_can_be_closed_twice() -> None:
    throttle = Throttle(f"redis://127.0.0.1:{free_port()}/0")
    await throttle.aclose()
    await throttle.aclose()


# ---------------------------------------------------------------- Redis only


@pytest.mark.redis
async def test_redis_counters_live_under_the_key_prefix(redis: RedisTarget) -> None:
    throttle = Throttle(redis.url, redis.key_prefix)
    try:
        await throttle.check("partner", "client-1", SMALL)
    finally:
        await throttle.aclose()

    keys = sorted([k.decode() async for k in redis.client.scan_iter(match=f"{redis.key_prefix}:*")])
    assert keys == [
        f"{redis.key_prefix}:throttle/{{partner/client-1}}/burst/3/1/window",
        f"{redis.key_prefix}:throttle/{{partner/client-1}}/sustained/5/60/window",
    ]


@pytest.mark.redis
async def test_two_processes_share_one_quota_exactly(redis: RedisTarget) -> None:
    """Two OS processes, 100 concurrent checks each on one subject: 50 pass in all."""
    command = [
        sys.executable,
        "-m",
        "tests.infra.throttle_worker",
        redis.url,
        redis.key_prefix,
        "--requests=100",
        "--concurrency=8",
        "--parties=2",
        "--burst=1000",
        "--sustained=50",
        "--sustained-window=3600",
    ]
    processes = [
        await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    async with asyncio.timeout(120):
        outputs = [await p.communicate() for p in processes]

    results = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert sum(r["allowed"] for r in results) == 50
    assert sum(r["refused"] for r in results) == 150


@pytest.mark.redis
async def test_event_loop_lag_while_checking_against_redis(
    redis: RedisTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prints checks/s and the loop's lag; no timing assertion (timing belongs to benchmarks).

    2,000 checks, 32 at a time, over 64 subjects, all allowed (the longest path: one read of
    both policies, then two hits), while a ticker measures how late its 5 ms sleeps wake up.
    """
    total, concurrency, nap = 2000, 32, 0.005
    tier = ThrottleTier(burst=100_000, sustained=1_000_000)
    throttle = Throttle(redis.url, redis.key_prefix)
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(nap)
            lags.append(time.perf_counter() - started - nap)

    issued = 0
    allowed = 0

    async def worker() -> None:
        nonlocal issued, allowed
        while issued < total:
            subject = f"client-{issued % 64}"
            issued += 1
            decision = await throttle.check("partner", subject, tier)
            allowed += decision.allowed

    try:
        await throttle.check("partner", "warm-up", tier)  # connect and load the scripts
        ticking = asyncio.create_task(ticker())
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        elapsed = time.perf_counter() - started
        done.set()
        await ticking
    finally:
        await throttle.aclose()

    assert allowed == total
    lags.sort()

    def percentile(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000

    with capsys.disabled():
        print(
            f"\nthrottle on Redis: {total} checks, {concurrency} concurrent, "
            f"{total / elapsed:.0f} checks/s; event-loop lag over {len(lags)} 5 ms sleeps: "
            f"p50 {percentile(0.5):.2f} ms, p99 {percentile(0.99):.2f} ms, "
            f"max {lags[-1] * 1000:.2f} ms"
        )


# ---------------------------------------------------------------- StateHeadersMiddleware


class Item(BaseModel):
    name: str


def headers_app(throttle: Throttle, tier: ThrottleTier) -> FastAPI:
    """A dependency counts each request and leaves the RateLimit fields in request.state."""

    async def throttled(request: Request) -> None:
        decision = await throttle.check("partner", "client-1", tier)
        add_response_headers(request, decision.headers)
        add_response_headers(request, {"X-Own": "from-state"})
        raise_if_throttled(decision)

    app = FastAPI(dependencies=[Depends(throttled)])
    install_problem_handlers(app)
    app.add_middleware(StateHeadersMiddleware)

    @app.get("/model")
    async def model() -> Item:
        return Item(name="a")

    @app.get("/direct")
    async def direct() -> JSONResponse:
        return JSONResponse({"name": "b"}, headers={"X-Own": "from-route"})

    return app


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def test_state_headers_reach_model_and_direct_responses() -> None:
    throttle = Throttle(None)
    tier = ThrottleTier(burst=5, sustained=100)
    try:
        async with client_of(headers_app(throttle, tier)) as client:
            model = await client.get("/model")
            direct = await client.get("/direct")
    finally:
        await throttle.aclose()

    assert model.status_code == 200
    assert model.json() == {"name": "a"}
    assert model.headers.get_list("RateLimit-Policy") == ['"burst";q=5;w=1, "sustained";q=100;w=60']
    assert model.headers.get_list("RateLimit") == ['"burst";r=4;t=1, "sustained";r=99;t=60']
    assert model.headers.get_list("X-Own") == ["from-state"]

    assert direct.status_code == 200
    assert direct.headers.get_list("RateLimit") == ['"burst";r=3;t=1, "sustained";r=98;t=60']
    assert direct.headers.get_list("X-Own") == ["from-route"], "the route's own value wins"


async def test_a_throttled_request_gets_one_copy_of_each_field_on_its_429() -> None:
    throttle = Throttle(None)
    tier = ThrottleTier(burst=1, sustained=100)
    try:
        async with client_of(headers_app(throttle, tier)) as client:
            assert (await client.get("/model")).status_code == 200
            refused = await client.get("/direct")
    finally:
        await throttle.aclose()

    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert refused.json()["code"] == "too-many-requests"
    assert refused.headers.get_list("Retry-After") == ["1"]
    assert refused.headers.get_list("RateLimit") == ['"burst";r=0;t=1, "sustained";r=99;t=60']
    assert len(refused.headers.get_list("RateLimit-Policy")) == 1
    assert refused.headers.get_list("X-Own") == ["from-state"]


async def test_headers_a_dependency_assigns_to_request_state_are_sent() -> None:
    async def dependency(request: Request) -> None:
        request.state.response_headers = {"RateLimit": '"burst";r=1;t=1'}

    app = FastAPI(dependencies=[Depends(dependency)])
    app.add_middleware(StateHeadersMiddleware)

    @app.get("/")
    async def index() -> Item:
        return Item(name="c")

    async with client_of(app) as client:
        response = await client.get("/")

    assert response.headers.get_list("RateLimit") == ['"burst";r=1;t=1']


async def test_responses_without_state_headers_are_untouched() -> None:
    app = FastAPI()
    app.add_middleware(StateHeadersMiddleware)

    @app.get("/")
    async def index() -> Item:
        return Item(name="d")

    async with client_of(app) as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert "RateLimit" not in response.headers


def test_in_process_windows_forget_subjects_that_stopped_calling() -> None:
    """Memory follows the active subjects: emptied windows are dropped by the periodic sweep."""
    windows = _LocalWindows()
    burst = _policies(ThrottleTier(burst=100_000, sustained=1_000_000))[0]
    for n in range(50):
        windows.hit(("partner", "burst", f"idle-{n}"), burst, 1000.0)
    later = 1000.0 + burst.window_seconds + 1
    for n in range(_LocalWindows._SWEEP_EVERY):
        windows.hit(("partner", "burst", "busy"), burst, later + n / 1_000_000)

    assert windows.stats(("partner", "burst", "idle-0"), burst, later).remaining == burst.quota
    assert [key[2] for key in windows._entries] == ["busy"]
