"""Process-API tests run twice: system_api called in-process, and over HTTP to a real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway import Gateway, build_gateway
from gateway_infra.clock import ManualClock
from gateway_infra.settings import Settings
from system_api.app import create_system_app
from tests.conftest import UvicornThread, make_settings


@pytest.fixture(params=["in_process", "http"])
async def gateway(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> AsyncIterator[Gateway]:
    if request.param == "in_process":
        built = build_gateway(make_settings(database_url), clock=clock)
        yield built
        await built.aclose()
        return
    system_side = build_gateway(make_settings(database_url), clock=clock)
    server = UvicornThread(
        create_system_app(settings=system_side.settings, erp=system_side.embedded_erp)
    ).start()
    settings: Settings = make_settings(
        database_url, system_api_transport="http", system_api_url=server.url
    )
    built = build_gateway(settings, clock=clock)
    yield built
    await built.aclose()
    server.stop()
    await system_side.aclose()
