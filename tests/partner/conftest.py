"""Fixtures of partner-edge tests: partners of two channels and an internal app, real tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from tests.conftest import BASE_URL, register_and_authorize


@dataclass
class Caller:
    client_id: str
    http: httpx.AsyncClient


async def _partner(
    gateway: Gateway, app: FastAPI, channel: str, scopes: frozenset[str]
) -> AsyncIterator[Caller]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        client_id, headers = await register_and_authorize(
            gateway, http, kind=ClientKind.PARTNER, scopes=scopes, channel=channel
        )
        http.headers.update(headers)
        yield Caller(client_id, http)


@pytest.fixture
async def webshop(gateway: Gateway, app: FastAPI) -> AsyncIterator[Caller]:
    """The webshop channel's client, holding every partner scope."""
    async for caller in _partner(gateway, app, "webshop", frozenset(PARTNER_SCOPES)):
        yield caller


@pytest.fixture
async def marketplace(gateway: Gateway, app: FastAPI) -> AsyncIterator[Caller]:
    """Another channel's client."""
    async for caller in _partner(gateway, app, "marketplace", frozenset(PARTNER_SCOPES)):
        yield caller


@pytest.fixture
async def read_only(gateway: Gateway, app: FastAPI) -> AsyncIterator[Caller]:
    """A webshop client that may read orders but not submit them."""
    async for caller in _partner(gateway, app, "webshop", frozenset({"orders:read"})):
        yield caller
