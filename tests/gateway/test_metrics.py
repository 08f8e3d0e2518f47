"""Prometheus /metrics: who may scrape, request figures by route template, technical counters, and
the business figures read from the database as orders move."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily, Metric

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import ManualClock
from gateway_infra.metrics import exposition
from gateway_infra.resilience import (
    CircuitBreaker,
    CircuitOpen,
    GuardPolicy,
    RemoteCallGuard,
    RemoteUnavailable,
)
from gateway_infra.settings import Settings
from tests.conftest import BASE_URL, make_settings, register_and_authorize, start_gateway
from tests.factories import order_payload, product, seed_products
from tests.scrape import Samples, scrape

ORDER_ROUTE = "/process/v1/orders/{order_id}"


def asgi_client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


# ---------------------------------------------------------------- who may scrape


async def statuses(app: FastAPI, addresses: Sequence[str], **headers: str) -> dict[str, int]:
    answers = {}
    for address in addresses:
        async with asgi_client(app, address) as http:
            answers[address] = (await http.get("/metrics", headers=headers)).status_code
    return answers


async def test_by_default_metrics_answer_only_loopback(app: FastAPI) -> None:
    answers = {}
    for address in ("127.0.0.1", "::1", "10.1.2.3", "192.168.7.7", "203.0.113.9"):
        async with asgi_client(app, address) as http:
            answers[address] = await http.get("/metrics")

    assert {a: r.status_code for a, r in answers.items()} == {
        "127.0.0.1": 200,
        "::1": 200,
        "10.1.2.3": 403,  # e.g. a load balancer in front of the gateway
        "192.168.7.7": 403,
        "203.0.113.9": 403,
    }
    refused = answers["203.0.113.9"]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/forbidden")
    assert "gateway_http_requests_total" not in refused.text


async def test_with_a_token_and_no_networks_set_private_networks_may_scrape_with_the_token(
    database_url: str, clock: ManualClock
) -> None:
    built = start_gateway(
        make_settings(database_url, metrics_bearer_token="scrape-secret-0123456789"), clock
    )
    try:
        app = build_app(built, run_background=False)
        with_token = await statuses(
            app,
            ("127.0.0.1", "10.1.2.3", "203.0.113.9"),
            Authorization="Bearer scrape-secret-0123456789",
        )
        without = await statuses(app, ("10.1.2.3",))
    finally:
        await built.aclose()

    assert with_token == {"127.0.0.1": 200, "10.1.2.3": 200, "203.0.113.9": 403}
    assert without == {"10.1.2.3": 401}


async def test_configured_networks_may_scrape_without_a_token(
    database_url: str, clock: ManualClock
) -> None:
    built = start_gateway(
        make_settings(database_url, metrics_allowed_networks="127.0.0.0/8,10.0.0.0/8"), clock
    )
    try:
        answers = await statuses(
            build_app(built, run_background=False), ("127.0.0.1", "10.1.2.3", "192.168.7.7")
        )
    finally:
        await built.aclose()

    assert answers == {"127.0.0.1": 200, "10.1.2.3": 200, "192.168.7.7": 403}


async def test_a_scrape_through_an_untrusted_proxy_is_refused(
    database_url: str, app: FastAPI, clock: ManualClock
) -> None:
    """A reverse proxy on the same host makes every caller look like loopback; the forwarding
    header gives it away unless GATEWAY_FORWARDED_ALLOW_IPS says the proxy is trusted (then
    uvicorn puts the caller's address in its place)."""
    proxied = await statuses(app, ("127.0.0.1",), **{"X-Forwarded-For": "203.0.113.9"})
    forwarded = await statuses(app, ("127.0.0.1",), Forwarded="for=203.0.113.9")
    built = start_gateway(make_settings(database_url, forwarded_allow_ips="127.0.0.1"), clock)
    try:
        trusted = await statuses(
            build_app(built, run_background=False),
            ("127.0.0.1",),
            **{"X-Forwarded-For": "127.0.0.1"},
        )
    finally:
        await built.aclose()

    assert proxied == {"127.0.0.1": 403}
    assert forwarded == {"127.0.0.1": 403}
    assert trusted == {"127.0.0.1": 200}


@pytest.fixture
async def guarded(database_url: str, clock: ManualClock) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url,
        metrics_bearer_token="scrape-secret-0123456789",
        metrics_allowed_networks="0.0.0.0/0,::/0",
    )
    built = start_gateway(settings, clock)
    yield build_app(built, run_background=False)
    await built.aclose()


async def test_a_configured_bearer_token_is_required_from_every_address(
    guarded: FastAPI,
) -> None:
    async with asgi_client(guarded, "203.0.113.9") as http:
        without = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await http.get(
            "/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"}
        )

    assert without.status_code == 401
    assert without.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert Samples.parse(right.text).families["gateway_orders"] == "gauge"


async def test_metrics_can_be_switched_off(database_url: str, clock: ManualClock) -> None:
    built = start_gateway(make_settings(database_url, metrics_enabled=False), clock)
    try:
        async with asgi_client(build_app(built, run_background=False)) as http:
            answer = await http.get("/metrics")
    finally:
        await built.aclose()
    assert answer.status_code == 404


def test_a_bad_network_in_the_allow_list_stops_the_gateway_at_start() -> None:
    with pytest.raises(ValueError, match="metrics_allowed_networks"):
        Settings(metrics_allowed_networks="10.0.0.0/8,not-a-network")


# ---------------------------------------------------------------- request figures


async def test_requests_are_counted_by_app_route_template_method_and_status(
    client: httpx.AsyncClient,
) -> None:
    labels = {"app": "process", "route": ORDER_ROUTE, "method": "GET"}
    before = await scrape(client)

    for order_id in ("ord_missing_1", "ord_missing_2"):
        assert (await client.get(f"/process/v1/orders/{order_id}")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    after = await scrape(client)

    def moved(name: str, **extra: str) -> float:
        return after.value(name, **extra) - before.value(name, **extra)

    assert moved("gateway_http_requests_total", **labels, status="404") == 2
    assert moved("gateway_http_request_duration_seconds_count", **labels) == 2
    assert moved("gateway_http_request_duration_seconds_bucket", **labels, le="+Inf") == 2
    assert (
        moved(
            "gateway_http_requests_total",
            app="gateway",
            route="(unmatched)",
            method="GET",
            status="404",
        )
        == 1
    )
    assert (
        moved(
            "gateway_http_requests_total",
            app="gateway",
            route="/healthz",
            method="GET",
            status="200",
        )
        == 1
    )
    routes = {s["route"] for s in after.series("gateway_http_requests_total")}
    assert not any("ord_missing" in route or "no/such" in route for route in routes)


async def test_made_up_request_methods_are_counted_as_other_and_add_no_series(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for n in range(3):
        await client.request(f"XMETHOD{n}", "/nope")
        await client.request(f"XMETHOD{n}", "/healthz")
    after = await scrape(client)

    methods = {s["method"] for s in after.series("gateway_http_requests_total")}
    assert not any(m.startswith("XMETHOD") for m in methods)
    unmatched = {"app": "gateway", "route": "(unmatched)", "method": "other", "status": "404"}
    assert (
        after.value("gateway_http_requests_total", **unmatched)
        == (before.get("gateway_http_requests_total", **unmatched) or 0) + 3
    )
    assert (
        after.value(
            "gateway_http_request_duration_seconds_count",
            app="gateway",
            route="/healthz",
            method="other",
        )
        - (
            before.get(
                "gateway_http_request_duration_seconds_count",
                app="gateway",
                route="/healthz",
                method="other",
            )
            or 0
        )
        == 3
    )


async def test_partner_requests_are_counted_under_the_partner_app_and_token_calls_under_oauth(
    gateway: Gateway, app: FastAPI
) -> None:
    async with asgi_client(app) as http:
        before = await scrape(http)
        _, headers = await register_and_authorize(
            gateway, http, kind=ClientKind.PARTNER, scopes=frozenset(PARTNER_SCOPES), channel="web"
        )
        read = await http.get("/partner/v2/orders/ord_none", headers=headers)
        after = await scrape(http)

    assert read.status_code == 404
    partner = {"app": "partner", "route": "/partner/v2/orders/{order_id}", "method": "GET"}
    assert after.value("gateway_http_requests_total", **partner, status="404") == (
        before.value("gateway_http_requests_total", **partner, status="404") + 1
    )
    token = {"app": "oauth", "route": "/oauth/token", "method": "POST", "status": "200"}
    assert after.value("gateway_http_requests_total", **token) == (
        before.value("gateway_http_requests_total", **token) + 1
    )


# ---------------------------------------------------------------- edge counters


@pytest.fixture
async def throttled(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose partners may make three requests a minute."""
    settings = make_settings(
        database_url, throttle_tiers={"standard": {"burst": 100, "sustained": 3}}
    )
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()


async def test_throttled_requests_and_idempotent_replays_are_counted_per_partner(
    throttled: Gateway,
) -> None:
    seed_products(throttled, product("MUG-RED-350", "12.90"))
    async with asgi_client(build_app(throttled, run_background=False)) as http:
        client_id, headers = await register_and_authorize(
            throttled,
            http,
            kind=ClientKind.PARTNER,
            scopes=frozenset(PARTNER_SCOPES),
            channel="webshop",
        )
        before = await scrape(http)
        keyed = {**headers, "Idempotency-Key": '"metrics-replay-1"'}
        body = {
            "channel_order_id": "MET-1",
            "currency": "EUR",
            "lines": [
                {
                    "line_id": "1",
                    "sku": "MUG-RED-350",
                    "quantity": 1,
                    "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                }
            ],
        }
        first = await http.post("/partner/v2/orders", json=body, headers=keyed)
        replay = await http.post("/partner/v2/orders", json=body, headers=keyed)
        answers = [await http.get("/partner/v2/orders/ord_none", headers=headers) for _ in range(3)]
        after = await scrape(http)

    assert first.status_code in (201, 202), first.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert [a.status_code for a in answers] == [404, 429, 429]
    assert after.value("gateway_idempotent_replays_total", client_id=client_id) == (
        before.value("gateway_idempotent_replays_total", client_id=client_id) + 1
    )
    assert after.value(
        "gateway_throttled_requests_total", namespace="partner", subject=client_id
    ) == (
        before.value("gateway_throttled_requests_total", namespace="partner", subject=client_id) + 2
    )


# ---------------------------------------------------------------- backends


async def test_backend_attempts_retries_and_breaker_state_are_counted(clock: ManualClock) -> None:
    name = f"erp-{random.getrandbits(32):08x}"  # fresh series in this process's registry
    breaker = CircuitBreaker(name, clock, failure_threshold=3, reset_after=timedelta(seconds=30))
    guard = RemoteCallGuard(
        breaker,
        GuardPolicy(attempts=3, backoff_base_seconds=0.0, backoff_max_seconds=0.0),
        is_unavailable=lambda exc: isinstance(exc, ConnectionError),
        rng=random.Random(1),
    )

    async def down() -> None:
        raise ConnectionError("refused")

    async def up() -> str:
        await asyncio.sleep(0)
        return "ok"

    initially = Samples.parse((await exposition({}, clock.now())).decode())
    with pytest.raises(RemoteUnavailable):
        await guard.call(down, idempotent=True)
    while_open = Samples.parse((await exposition({}, clock.now())).decode())
    with pytest.raises(CircuitOpen):
        await guard.call(up, idempotent=True)
    clock.advance(timedelta(seconds=31))
    assert await guard.call(up, idempotent=True) == "ok"
    closed_again = Samples.parse((await exposition({}, clock.now())).decode())

    state = "gateway_circuit_breaker_state"
    assert initially.value(state, backend=name, state="closed") == 1
    assert while_open.value(state, backend=name, state="open") == 1
    assert while_open.value(state, backend=name, state="closed") == 0
    assert closed_again.value(state, backend=name, state="closed") == 1
    assert closed_again.value(state, backend=name, state="half_open") == 0
    calls = "gateway_backend_call_duration_seconds_count"
    assert while_open.value(calls, backend=name, outcome="unavailable") == 3
    assert while_open.value("gateway_backend_call_retries_total", backend=name) == 2
    assert closed_again.value(calls, backend=name, outcome="ok") == 1
    assert closed_again.value("gateway_backend_calls_short_circuited_total", backend=name) == 1
    transitions = "gateway_circuit_breaker_transitions_total"
    assert [
        closed_again.value(transitions, backend=name, state=s)
        for s in ("open", "half_open", "closed")
    ] == [1, 1, 1]


# ---------------------------------------------------------------- business figures


async def test_order_figures_move_as_orders_are_taken_aged_and_cancelled(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))
    empty = await scrape(client)

    first = await client.post("/process/v1/orders", json=order_payload("AGE-1"))
    clock.advance(timedelta(minutes=8))  # within the access token's lifetime
    second = await client.post("/process/v1/orders", json=order_payload("AGE-2"))
    refused = await client.post(
        "/process/v1/orders",
        json=order_payload("AGE-3", {**order_payload()["lines"][0], "sku": "X"}),
    )
    clock.advance(timedelta(minutes=2))
    taken = await scrape(client)
    cancel = await client.post(
        f"/process/v1/orders/{first.json()['order_id']}/cancel", json={"reason": "test"}
    )
    after_cancel = await scrape(client)

    assert (first.status_code, second.status_code, refused.status_code) == (201, 201, 409)
    assert cancel.status_code == 200, cancel.text
    assert empty.series("gateway_orders") == []
    accepted = {"channel": "webshop", "state": "accepted"}
    assert taken.value("gateway_orders", **accepted) == 2
    assert taken.value("gateway_orders", channel="webshop", state="rejected") == 1
    age = "gateway_order_age_seconds"
    # Ages 120 s and 600 s: nearest rank puts the median on the younger one.
    assert taken.get(age, **accepted, quantile="0.5") == 120
    assert taken.get(age, **accepted, quantile="0.95") == 600
    assert taken.get(age, **accepted, quantile="1") == 600
    assert taken.get(age, channel="webshop", state="rejected", quantile="1") is None
    assert after_cancel.value("gateway_orders", **accepted) == 1
    assert after_cancel.value("gateway_orders", channel="webshop", state="cancelled") == 1
    assert after_cancel.get(age, **accepted, quantile="1") == 120


async def test_outbox_backlog_and_due_timers_are_read_from_the_database(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))
    await client.post("/process/v1/orders", json=order_payload("OUT-1"))
    backlog = await scrape(client)
    await gateway.sequencer.run_once()
    sequenced = await scrape(client)

    assert backlog.value("gateway_outbox_unsequenced_events") > 0
    assert sequenced.value("gateway_outbox_unsequenced_events") == 0
    relay = "gateway_webhook_relay_backlog_events"
    assert backlog.value(relay) == 0
    assert sequenced.value(relay) > 0
    await gateway.webhooks.relay.run_once()
    assert (await scrape(client)).value(relay) == 0
    await gateway.sla_check.job.ensure_scheduled()
    assert (await scrape(client)).value("gateway_timers_due", kind="sla.check") == 0
    clock.advance(timedelta(seconds=gateway.settings.sla_check_seconds))
    assert (await scrape(client)).value("gateway_timers_due", kind="sla.check") == 1


async def test_a_source_that_cannot_be_read_is_reported_and_the_rest_still_served(
    clock: ManualClock,
) -> None:
    async def broken(_now: datetime) -> Sequence[Metric]:
        raise ConnectionError("database unreachable")

    async def fine(_now: datetime) -> Sequence[Metric]:
        return [GaugeMetricFamily("gateway_test_figure", "A figure.", value=7)]

    samples = Samples.parse(
        (await exposition({"broken": broken, "fine": fine}, clock.now())).decode()
    )

    assert samples.value("gateway_scrape_source_up", source="broken") == 0
    assert samples.value("gateway_scrape_source_up", source="fine") == 1
    assert samples.value("gateway_test_figure") == 7
    assert samples.families["gateway_http_requests"] == "counter"
