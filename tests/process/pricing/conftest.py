"""Pricing tests move the clock by hours and days, past an access token's lifetime: the internal
app's client fetches a fresh token whenever its last one would have expired."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from tests.conftest import BASE_URL, INTERNAL_SCOPES


class FreshToken(httpx.Auth):
    """Client credentials, exchanged for a new token once the clock has moved past the last."""

    def __init__(self, clock: ManualClock, client_id: str, secret: str, lifetime: int) -> None:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.clock = clock
        self.basic = f"Basic {basic}"
        self.lifetime = timedelta(seconds=lifetime // 2)
        self.token: str | None = None
        self.renew_at: datetime | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise NotImplementedError("the test client is asynchronous")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.token is None or self.renew_at is None or self.clock.now() >= self.renew_at:
            answer = yield httpx.Request(
                "POST",
                f"{BASE_URL}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": self.basic},
            )
            await answer.aread()
            assert answer.status_code == 200, answer.text
            self.token = answer.json()["access_token"]
            self.renew_at = self.clock.now() + self.lifetime
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.fixture
async def client(
    gateway: Gateway, app: FastAPI, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """An internal application holding every process and system scope."""
    record, secret = gateway.clients.add(
        name="test-pricing-ops", kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
    )
    auth = FreshToken(
        clock, record.client_id, secret, gateway.settings.access_token_lifetime_seconds
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as c:
        yield c
