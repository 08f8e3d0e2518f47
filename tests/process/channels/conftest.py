"""Channel-profile tests: a gateway per database, the service, and the router in an app alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PROCESS_SCOPES, Layer
from gateway_infra.clock import ManualClock
from gateway_infra.http import install_common_http
from gateway_infra.openapi import install_openapi
from gateway_infra.settings import Settings
from process_api.channels.routes import router
from process_api.channels.service import ChannelProfiles
from tests.conftest import BASE_URL, register_and_authorize, start_gateway

HeadersFor = Callable[[frozenset[str]], Awaitable[dict[str, str]]]


@pytest.fixture
async def gateway(settings: Settings, clock: ManualClock) -> AsyncIterator[Gateway]:
    """One gateway per database (process tests elsewhere also run over HTTP; these need not)."""
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()


@pytest.fixture
def channels(gateway: Gateway) -> ChannelProfiles:
    return ChannelProfiles(gateway.store, known_tiers=gateway.settings.throttle_tiers)


@pytest.fixture
def channels_app(gateway: Gateway, channels: ChannelProfiles) -> FastAPI:
    """The channels router in an app of its own, authenticating like the process layer."""
    app = FastAPI()
    install_common_http(app, max_body_bytes=gateway.settings.max_body_bytes, timeout_seconds=15)
    app.include_router(router)
    app.state.channels = channels
    app.state.auth = gateway.layer_auth(Layer.PROCESS)
    install_openapi(app, token_url=f"{gateway.issuer}/oauth/token")
    return app


@pytest.fixture
async def headers_for(gateway: Gateway) -> AsyncIterator[HeadersFor]:
    """Authorization headers of a new internal client holding the given scopes (a real token)."""
    transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as token_endpoint:

        async def headers(scopes: frozenset[str]) -> dict[str, str]:
            _, found = await register_and_authorize(
                gateway, token_endpoint, kind=ClientKind.INTERNAL, scopes=scopes
            )
            return found

        yield headers


@pytest.fixture
async def http(channels_app: FastAPI, headers_for: HeadersFor) -> AsyncIterator[httpx.AsyncClient]:
    """A caller of the channels app holding every process scope."""
    transport = httpx.ASGITransport(app=channels_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://process.test") as client:
        client.headers.update(await headers_for(frozenset(PROCESS_SCOPES)))
        yield client
