"""Fixtures of webhook delivery tests: a real HTTP receiver on loopback that verifies signatures
with the `standardwebhooks` package, a gateway allowed to call it, and helpers that emit events
and run the relay and the sender.

The clock starts at the real time: receivers check `webhook-timestamp` against their own clock
(five minutes of tolerance), so tests move the gateway's clock by seconds, not hours.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import JsonValue
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from contracts import EventEnvelope
from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import (
    Attempt,
    Delivery,
    DeliveryState,
    SubscriptionWithSecret,
)
from gateway_infra.delivery.tables import deliveries
from gateway_infra.settings import Settings
from gateway_infra.unit_of_work import UnitOfWork
from partner_api.events import PARTNER_EVENT_TYPES
from tests.conftest import UvicornThread, make_settings

RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 4.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


def delivery_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allow_loopback": True,
        "webhook_retry_base_seconds": RETRY_BASE_SECONDS,
        "webhook_retry_max_delay_seconds": RETRY_MAX_SECONDS,
        "webhook_max_attempts": 5,
        "webhook_max_age_seconds": 3600,
        "webhook_disable_after_seconds": 3600,
        "webhook_timeout_seconds": 5.0,
        "webhook_lease_seconds": 30.0,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return delivery_settings(database_url)


# ---------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Call:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    """A partner's webhook endpoint: verifies every call, fails on demand."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    failing: bool = False
    fail_next: int = 0
    failure_status: int = 503
    big_body_bytes: int = 1_000_000
    calls: list[Call] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def verify(self, body: bytes, headers: dict[str, str], secrets: Sequence[str]) -> bool:
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with self.lock:
            verified = self.verify(body, headers, self.secrets)
            if not verified:
                status = 401
            elif self.failing or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                status = self.failure_status
            else:
                status = 204
            self.calls.append(Call(request.url.path, headers, body, verified, status))
            self.lock.notify_all()
        return Response(status_code=status)

    async def redirect(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(Call(request.url.path, dict(request.headers), b"", False, 307))
        return Response(status_code=307, headers={"location": f"{self.url}/hook"})

    async def big(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(
                Call(request.url.path, dict(request.headers), await request.body(), True, 200)
            )
        size = self.big_body_bytes

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                part = min(65_536, size - sent)
                sent += part
                yield b"x" * part

        return StreamingResponse(chunks(), status_code=200, media_type="text/plain")

    def app(self) -> FastAPI:
        return FastAPI(
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/redirect", self.redirect, methods=["POST"]),
                Route("/big", self.big, methods=["POST"]),
            ],
        )

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The events it accepted (answered 2xx), in the order they came."""
        with self.lock:
            return [c.event for c in self.calls if c.status == 204]

    def wait_for_accepted(self, count: int, *, timeout: float) -> list[dict[str, Any]]:
        """Block until it has accepted `count` events (a gateway process sends on its own)."""
        with self.lock:
            self.lock.wait_for(
                lambda: sum(1 for c in self.calls if c.status == 204) >= count, timeout=timeout
            )
        return self.accepted

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]


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


# ---------------------------------------------------------------- helpers


async def subscribe(
    gateway: Gateway,
    receiver: Receiver,
    *,
    channel: str = "webshop",
    types: Sequence[str] = PARTNER_EVENT_TYPES,
    path: str = "/hook",
) -> SubscriptionWithSecret:
    """A webhook of the channel to the receiver, whose secret the receiver verifies with."""
    made = await gateway.webhooks.subscriptions.create(
        channel=channel, url=f"{receiver.url}{path}", event_types=types
    )
    receiver.secrets.append(made.secret)
    return made


async def emit(
    gateway: Gateway,
    type_: str,
    subject: str,
    *,
    channel: str | None = "webshop",
    **data: JsonValue,
) -> EventEnvelope:
    """One event committed to the outbox, as a business change would."""

    def publish(uow: UnitOfWork) -> EventEnvelope:
        return uow.emit(type_, source="tests", subject=subject, channel=channel, data=data)

    return await gateway.store.write(publish)


async def pump(gateway: Gateway) -> int:
    """Sequence committed events, relay them, send what is due now; attempts made."""
    await gateway.sequencer.run_once()
    return await gateway.webhooks.run_once()


async def pump_until_settled(gateway: Gateway, clock: ManualClock, *, rounds: int = 60) -> int:
    """Pump, moving the clock past every retry delay, until nothing is pending; attempts made."""
    made = 0
    for _ in range(rounds):
        made += await pump(gateway)
        if not await pending(gateway):
            return made
        clock.advance(timedelta(seconds=RETRY_MAX_SECONDS))
    raise AssertionError(f"deliveries still pending after {rounds} rounds")


async def all_deliveries(gateway: Gateway) -> list[Delivery]:
    rows = await gateway.store.read(
        lambda conn: list(conn.execute(select(deliveries).order_by(deliveries.c.delivery_id)))
    )
    return [Delivery.from_row(row) for row in rows]


async def pending(gateway: Gateway) -> list[Delivery]:
    return [d for d in await all_deliveries(gateway) if d.state is DeliveryState.PENDING]


async def attempts_of(gateway: Gateway, delivery_id: int) -> list[Attempt]:
    found = await gateway.webhooks.admin.attempts(delivery_id)
    assert found is not None
    return found
